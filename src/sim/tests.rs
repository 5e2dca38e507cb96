//! End-to-end tests of the simulator over real TCP.
