//! SA Forum HPI (Hardware Platform Interface) over IPMI, for ATCA shelves.
//!
//! **Layer:** a platform layer beside `dataplane`: it talks to the shelf's IPMI controllers and
//! knows nothing of Totem. The AIS services (`ais`: CLM, AMF) depend on it to learn that a
//! blade is being extracted (hot-swap state M4 → M5) early enough to switch its services over
//! before it powers off.
//!
//! **What it holds:** the HPI model (domain, resource presence table, hot-swap states,
//! sensors, events) and its IPMI backend (the README's table says how far each has come).

#![forbid(unsafe_code)]
