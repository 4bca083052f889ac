//! Bodies of the fuzz targets in `hpi/fuzz`: every response parser of [`crate::ipmi::msg`]
//! on arbitrary bytes. None may panic; the unit tests run them on seeded random inputs too.

use crate::ipmi::msg;

/// PICMG responses: properties, address info, activation policy, LEDs, acknowledgements.
pub fn fuzz_picmg(data: &[u8]) {
    let _ = msg::PicmgProperties::parse(data);
    let _ = msg::AddressInfo::parse(data);
    let _ = msg::parse_activation_policy(data);
    let _ = msg::parse_picmg_ack("fuzz", data);
    if let Ok(p) = msg::LedProperties::parse(data) {
        let _ = p.led_ids();
    }
    if let Ok(s) = msg::LedState::parse(data) {
        let _ = s.function.encode();
    }
}

/// Sensor responses: readings (hot-swap state included) and thresholds.
pub fn fuzz_sensor(data: &[u8]) {
    if let Ok(r) = msg::SensorReading::parse(data) {
        let _ = r.hot_swap_state();
    }
    let _ = msg::RawThresholds::parse(data);
}

/// SEL: Get SEL Info, Get SEL Entry and the decoded events.
pub fn fuzz_sel(data: &[u8]) {
    let _ = msg::SelInfo::parse(data);
    if let Ok((_, msg::SelRecord::Event(e))) = msg::parse_sel_entry(data) {
        let _ = e.hot_swap();
        let _ = e.ipmb_addr();
    }
}

/// SDR: Get SDR, reservations, whole records and their conversions.
pub fn fuzz_sdr(data: &[u8]) {
    let _ = msg::parse_reservation(data);
    let _ = msg::parse_get_sdr(data);
    if let Ok(msg::SdrRecord::Sensor(s)) = msg::SdrRecord::parse(data)
        && let Some(c) = s.conversion
    {
        for raw in [0u8, 1, 0x7F, 0x80, 0xFF] {
            let _ = c.convert(raw);
        }
    }
}

/// FRU inventory: area info, Read FRU Data and whole images.
pub fn fuzz_fru(data: &[u8]) {
    let _ = msg::parse_fru_area_info(data);
    let _ = msg::parse_read_fru(data);
    let _ = msg::parse_fru_inventory(data);
}

/// Bridged answers embedded in a Send Message response.
pub fn fuzz_bridged(data: &[u8]) {
    let _ = msg::EmbeddedResponse::parse(data);
}

#[cfg(test)]
mod tests {
    /// Every target on 20 000 seeded random inputs (lengths 0..64) and on every prefix of
    /// the well-formed samples the unit tests use.
    #[test]
    fn targets_survive_random_and_truncated_input() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let targets: [fn(&[u8]); 6] = [
            super::fuzz_picmg,
            super::fuzz_sensor,
            super::fuzz_sel,
            super::fuzz_sdr,
            super::fuzz_fru,
            super::fuzz_bridged,
        ];
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            for t in &targets {
                t(&buf);
            }
        }
    }
}
