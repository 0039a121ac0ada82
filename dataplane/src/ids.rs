//! The index spaces of the forwarding tables, each a type of its own so
//! that a local port, a logical port, a datapath and a remote chassis
//! cannot be mixed up.
//! "None of them" is `Option`, never a sentinel value.

use std::fmt;

/// A local port of this node (a VM interface, the uplink, a provider
/// port): an index into the engine's port table, the one a worker polls
/// and transmits on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl TryFrom<usize> for PortId {
    type Error = std::num::TryFromIntError;

    fn try_from(i: usize) -> Result<Self, Self::Error> {
        u16::try_from(i).map(PortId)
    }
}

/// A logical port: an index into [`crate::tables::Tables::lports`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LportIdx(pub u32);

/// A logical datapath: an index into
/// [`crate::tables::Tables::datapaths`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatapathIdx(pub u16);

/// A remote chassis: an index into
/// [`crate::tables::Underlay::chassis`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChassisIdx(pub u16);

macro_rules! index {
    ($($t:ident),*) => {$(
        impl $t {
            /// The index, for slices.
            #[inline(always)]
            pub fn get(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

index!(PortId, LportIdx, DatapathIdx, ChassisIdx);
