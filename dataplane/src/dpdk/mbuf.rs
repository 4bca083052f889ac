//! An owned mbuf: freed on drop, so a panic in a callback cannot leak it.

#![allow(unsafe_code)]

use std::ptr::NonNull;

use dpdk_sys::{
    rte_mbuf, rte_mempool, shim_rte_mbuf_nb_segs, shim_rte_pktmbuf_alloc, shim_rte_pktmbuf_append,
    shim_rte_pktmbuf_data_len, shim_rte_pktmbuf_free, shim_rte_pktmbuf_mtod,
};

/// One mbuf chain this code owns. Dropping it returns it to its mempool.
#[derive(Debug)]
pub(crate) struct Mbuf(NonNull<rte_mbuf>);

impl Mbuf {
    /// Takes ownership of a raw mbuf (null gives `None`).
    ///
    /// # Safety
    /// `raw` is null or a valid mbuf that nobody else owns or frees.
    pub(crate) unsafe fn from_raw(raw: *mut rte_mbuf) -> Option<Self> {
        NonNull::new(raw).map(Self)
    }

    /// Allocates an empty mbuf from `pool`; `None` when the pool is exhausted.
    ///
    /// # Safety
    /// `pool` is a live pktmbuf pool.
    pub(crate) unsafe fn alloc(pool: NonNull<rte_mempool>) -> Option<Self> {
        // SAFETY: the caller guarantees `pool` is a live pktmbuf pool; the result is null or
        // a fresh mbuf we own.
        unsafe { Self::from_raw(shim_rte_pktmbuf_alloc(pool.as_ptr())) }
    }

    /// Gives up ownership (the mbuf goes to `tx_burst`, which frees what it sends).
    pub(crate) fn into_raw(self) -> *mut rte_mbuf {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }

    /// The number of segments of the chain.
    pub(crate) fn segments(&self) -> u16 {
        // SAFETY: self.0 is a valid mbuf we own.
        unsafe { shim_rte_mbuf_nb_segs(self.0.as_ptr()) }
    }

    /// The first segment's data.
    pub(crate) fn data(&self) -> &[u8] {
        // SAFETY: self.0 is a valid mbuf we own; mtod points at data_len initialised bytes
        // inside its data room, which live as long as the mbuf and nobody else writes to
        // them while we own it.
        unsafe {
            let m = self.0.as_ptr();
            let len = usize::from(shim_rte_pktmbuf_data_len(m));
            std::slice::from_raw_parts(shim_rte_pktmbuf_mtod(m).cast::<u8>(), len)
        }
    }

    /// Appends `len` bytes to the data and returns them (stale contents), or `None` when the
    /// tailroom is too small.
    pub(crate) fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: self.0 is a valid single-segment mbuf we own; append returns null or a
        // pointer to `len` bytes of its data room, now part of the data, that only we can
        // reach through `&mut self`. The bytes may be uninitialised memory of the pool, but
        // u8 has no invalid values and DPDK's pool memory is zeroed at creation (memzone),
        // so reading them later is defined.
        unsafe {
            let p = shim_rte_pktmbuf_append(self.0.as_ptr(), len);
            (!p.is_null()).then(|| std::slice::from_raw_parts_mut(p.cast::<u8>(), usize::from(len)))
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (from_raw/alloc contract, into_raw forgets self), so it is
        // freed exactly once.
        unsafe { shim_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

// SAFETY: an mbuf is plain memory in a mempool shared by all threads; freeing it from another
// thread is allowed (mempool put is thread-safe; unregistered threads bypass the per-lcore
// cache). Ownership is unique, so moving it between threads cannot create aliasing.
unsafe impl Send for Mbuf {}
