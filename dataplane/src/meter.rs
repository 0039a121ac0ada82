//! OVN meters (ovn-nb(5) `Meter`, `Meter_Band`; SB's copies) as OVS's
//! userspace datapath runs them (`dp_netdev_run_meter`): each `drop` band
//! is a token bucket that fills at the band's `rate` and holds at most its
//! `burst_size` (the rate when the burst is 0, as `dpif_netdev_meter_set`
//! has it), starting full; a packet is dropped when any band's bucket
//! cannot pay for it. Units are OVS's: a `pktps` band counts thousandths
//! of a packet per millisecond, a `kbps` band bits.
//!
//! Here a meter limits ACL log lines (OVN's `log(meter=…)`): workers that
//! evaluate a logged ACL ask [`Meter::admit`] before they queue a line.
//! It takes no lock: the buckets are atomics, and the time since the last
//! refill goes to exactly one of racing workers (`fetch_max` of the
//! clock), so no time is counted twice.

use std::sync::atomic::{AtomicU64, Ordering};

/// A meter's `unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterUnit {
    /// Packets per second.
    Pktps,
    /// Kilobits per second.
    Kbps,
}

impl MeterUnit {
    /// NB / SB's value (`kbps` or `pktps`).
    pub fn parse(s: &str) -> Option<MeterUnit> {
        match s {
            "pktps" => Some(MeterUnit::Pktps),
            "kbps" => Some(MeterUnit::Kbps),
            _ => None,
        }
    }
}

/// One `drop` band: `rate` per second (in the meter's unit) and
/// `burst_size` (0: the rate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    pub rate: u64,
    pub burst_size: u64,
}

/// A meter as the control plane gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterConfig {
    /// SB's `name` (for a fair meter, OVN's per-ACL `<meter>__<acl uuid>`).
    pub name: String,
    pub unit: MeterUnit,
    pub bands: Vec<Band>,
}

impl MeterConfig {
    /// `rate` packets a second with a burst of as many.
    pub fn pktps(name: &str, rate: u64) -> MeterConfig {
        MeterConfig {
            name: name.into(),
            unit: MeterUnit::Pktps,
            bands: vec![Band {
                rate,
                burst_size: 0,
            }],
        }
    }
}

/// A running meter: its buckets and when they were last filled.
#[derive(Debug)]
pub struct Meter {
    unit: MeterUnit,
    /// (rate, capacity in bucket units, bucket).
    bands: Vec<(u64, u64, AtomicU64)>,
    last_ms: AtomicU64,
}

impl Meter {
    pub fn new(cfg: &MeterConfig) -> Meter {
        let bands = cfg
            .bands
            .iter()
            .map(|b| {
                let burst = if b.burst_size == 0 {
                    b.rate
                } else {
                    b.burst_size
                };
                let capacity = burst.saturating_mul(1000);
                (b.rate, capacity, AtomicU64::new(capacity))
            })
            .collect();
        Meter {
            unit: cfg.unit,
            bands,
            last_ms: AtomicU64::new(coarse_millis()),
        }
    }

    /// Whether a packet of `bytes` bytes passes at the current time.
    pub fn admit(&self, bytes: usize) -> bool {
        self.admit_at(coarse_millis(), bytes)
    }

    /// [`Meter::admit`] at `now_ms` (a monotonic clock in milliseconds).
    fn admit_at(&self, now_ms: u64, bytes: usize) -> bool {
        let last = self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
        let elapsed = now_ms.saturating_sub(last);
        let volume = match self.unit {
            MeterUnit::Pktps => 1000,
            MeterUnit::Kbps => bytes as u64 * 8,
        };
        let mut passes = true;
        for (rate, capacity, bucket) in &self.bands {
            let fill = elapsed.saturating_mul(*rate);
            let paid = bucket.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                let b = b.saturating_add(fill).min(*capacity);
                Some(b.checked_sub(volume).unwrap_or(b))
            });
            // The closure's input is the bucket before; it paid when there was enough.
            let before = paid.unwrap_or_else(|b| b);
            passes &= before.saturating_add(fill).min(*capacity) >= volume;
        }
        passes
    }
}

/// CLOCK_MONOTONIC_COARSE in milliseconds (a vDSO read, no system call;
/// its few milliseconds of resolution are far below a bucket's second).
fn coarse_millis() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; on failure it stays 0.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
    }
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(unit: MeterUnit, rate: u64, burst_size: u64) -> Meter {
        let m = Meter::new(&MeterConfig {
            name: "m".into(),
            unit,
            bands: vec![Band { rate, burst_size }],
        });
        m.last_ms.store(0, Ordering::Relaxed);
        m
    }

    fn passed(m: &Meter, now_ms: u64, packets: usize, bytes: usize) -> usize {
        (0..packets).filter(|_| m.admit_at(now_ms, bytes)).count()
    }

    #[test]
    fn a_pktps_band_passes_its_burst_then_its_rate() {
        let m = meter(MeterUnit::Pktps, 10, 25);
        assert_eq!(passed(&m, 0, 100, 64), 25, "a full bucket: the burst");
        assert_eq!(passed(&m, 500, 100, 64), 5, "half a second at 10/s");
        assert_eq!(passed(&m, 600, 100, 64), 1);
        assert_eq!(
            passed(&m, 60_000, 100, 64),
            25,
            "an idle minute refills no more than the burst"
        );
    }

    #[test]
    fn a_burst_of_zero_is_the_rate_as_ovs_has_it() {
        let m = meter(MeterUnit::Pktps, 2, 0);
        assert_eq!(passed(&m, 0, 10, 64), 2);
        assert_eq!(passed(&m, 1000, 10, 64), 2);
    }

    #[test]
    fn a_kbps_band_counts_bits() {
        // 8 kbit/s, burst 8 kbit: 1000 bytes fit once, then 125 bytes per 125 ms.
        let m = meter(MeterUnit::Kbps, 8, 8);
        assert!(m.admit_at(0, 1000));
        assert!(!m.admit_at(0, 1));
        assert!(m.admit_at(125, 125));
        assert!(!m.admit_at(125, 125));
    }

    #[test]
    fn every_band_must_pass() {
        let m = Meter::new(&MeterConfig {
            name: "m".into(),
            unit: MeterUnit::Pktps,
            bands: vec![
                Band {
                    rate: 100,
                    burst_size: 100,
                },
                Band {
                    rate: 1,
                    burst_size: 3,
                },
            ],
        });
        m.last_ms.store(0, Ordering::Relaxed);
        assert_eq!(passed(&m, 0, 50, 64), 3);
    }
}
