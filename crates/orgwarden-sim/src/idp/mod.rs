//! Identity-provider simulators beside the Admin API one, each on its own port and following its
//! provider's public contract, all describing the seeded directory ([`SimState::directory`]).
//!
//! [`SimState::directory`]: crate::SimState::directory

pub(crate) mod google;
