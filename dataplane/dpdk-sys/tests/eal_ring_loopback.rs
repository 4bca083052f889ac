//! End-to-end check of the raw binding on a real DPDK: EAL starts without hugepages or PCI,
//! the `net_ring` virtual device (its RX and TX queues share one ring, so it loops frames
//! back) is configured through the bound ethdev API, and one frame goes out and comes back
//! through the shim's inline wrappers (mbuf alloc/append/mtod, tx/rx burst, free).
//!
//! Assumes: DPDK >= 22.11 installed with its poll-mode driver plugins (Debian `dpdk`), run as
//! a user that may lock memory (root in CI). EAL runs once per process, so this file holds
//! exactly one test. It uses one lcore and no busy polling, so it is safe on 2 cores.

#![cfg(feature = "link")]
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int};
use std::ptr;

use dpdk_sys::*;

fn errno_text() -> String {
    // SAFETY: shim_rte_errno reads the calling thread's rte_errno; rte_strerror returns a
    // pointer to a static or thread-local NUL-terminated string.
    unsafe {
        let e = shim_rte_errno();
        let s = std::ffi::CStr::from_ptr(rte_strerror(e));
        format!("rte_errno {e}: {}", s.to_string_lossy())
    }
}

#[test]
fn one_frame_round_trips_through_net_ring() {
    let args = [
        "dpdk-sys-test",
        "-l",
        "0",
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--log-level=lib.eal:warning",
        "--vdev=net_ring0",
    ];
    let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
    let argc = c_int::try_from(argv.len()).unwrap();
    // SAFETY: argv holds argc pointers to NUL-terminated strings that outlive the call (EAL
    // may permute the array but does not free it); EAL is initialised once in this process.
    let rc = unsafe { rte_eal_init(argc, argv.as_mut_ptr()) };
    assert!(rc >= 0, "rte_eal_init failed: {}", errno_text());

    // SAFETY: EAL is initialised; these calls only read device and lcore tables.
    let (ports, socket) = unsafe { (rte_eth_dev_count_avail(), rte_socket_id()) };
    assert_eq!(ports, 1, "expected exactly the net_ring0 port");
    let socket = c_int::try_from(socket).unwrap_or(0);

    let pool_name = CString::new("dpdk_sys_test").unwrap();
    // SAFETY: EAL is initialised; the name is NUL-terminated; sizes are in range.
    let pool =
        unsafe { rte_pktmbuf_pool_create(pool_name.as_ptr(), 255, 0, 0, 2048 + 128, socket) };
    assert!(!pool.is_null(), "mempool: {}", errno_text());

    let port = 0u16;
    let conf = rte_eth_conf::default();
    // SAFETY: port 0 exists (counted above); conf and pool are valid for the calls; queue
    // setup happens after configure and before start, as ethdev requires.
    unsafe {
        assert_eq!(rte_eth_dev_configure(port, 1, 1, &conf), 0, "configure");
        let sock = u32::try_from(socket).unwrap_or(0);
        assert_eq!(
            rte_eth_rx_queue_setup(port, 0, 64, sock, ptr::null(), pool),
            0,
            "rxq"
        );
        assert_eq!(
            rte_eth_tx_queue_setup(port, 0, 64, sock, ptr::null()),
            0,
            "txq"
        );
        assert_eq!(rte_eth_dev_start(port), 0, "start");
    }

    let payload: Vec<u8> = (0..60u8).map(|i| i.wrapping_mul(7) ^ 0x5a).collect();
    // SAFETY: pool is a live pktmbuf pool; append returns a pointer to `len` writable bytes
    // inside the mbuf's data room or null; tx_burst takes ownership of sent mbufs.
    unsafe {
        let m = shim_rte_pktmbuf_alloc(pool);
        assert!(!m.is_null(), "mbuf alloc: {}", errno_text());
        let dst = shim_rte_pktmbuf_append(m, payload.len() as u16);
        assert!(!dst.is_null(), "append");
        ptr::copy_nonoverlapping(payload.as_ptr(), dst.cast::<u8>(), payload.len());
        let mut tx = [m];
        assert_eq!(
            shim_rte_eth_tx_burst(port, 0, tx.as_mut_ptr(), 1),
            1,
            "tx burst"
        );
    }

    let mut rx = [ptr::null_mut::<rte_mbuf>(); 8];
    // SAFETY: rx has room for 8 mbuf pointers; the port is started.
    let n = unsafe { shim_rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), rx.len() as u16) };
    assert_eq!(
        n, 1,
        "the frame sent on net_ring0 must come back on its rx queue"
    );
    // SAFETY: rx[0] is a valid mbuf we now own; mtod points at data_len readable bytes.
    let got = unsafe {
        let m = rx[0];
        let len = usize::from(shim_rte_pktmbuf_data_len(m));
        let data = std::slice::from_raw_parts(shim_rte_pktmbuf_mtod(m).cast::<u8>(), len).to_vec();
        shim_rte_pktmbuf_free(m);
        data
    };
    assert_eq!(got, payload);

    // SAFETY: the port was started above and no mbuf references remain; cleanup is last.
    unsafe {
        assert_eq!(rte_eth_dev_stop(port), 0);
        assert_eq!(rte_eth_dev_close(port), 0);
        rte_mempool_free(pool);
        assert_eq!(rte_eal_cleanup(), 0);
    }
}
