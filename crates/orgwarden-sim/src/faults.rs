//! Fault injection and rate limiting: the ways the simulator misbehaves on purpose.
//!
//! [`Faults`] is the runtime-changeable configuration. For every request whose path contains
//! `path_contains` (every request when it is `None`), a counter of matching requests goes up; once
//! it exceeds `after_requests`, the request is "faulty" and [`decide`] picks what happens to it
//! from the seed and the counter alone. The counter restarts whenever the faults are replaced, so
//! `Faults { path_contains: Some("/users".into()), after_requests: 4, error_rate: 1.0, .. }` fails
//! exactly the fifth and later `/users` requests sent after the faults were set.
//!
//! The choice is a pure function of (seed, request number), so a run is reproducible and a rate
//! of 1.0 always fires. Kinds are rolled independently and applied in this order: latency (every
//! faulty request), dropped connection, error status (500 or 529, evenly), malformed 200 body
//! (truncated or garbled, evenly), and the `empty_members` switch for the users list.
//!
//! `revoke_key_after: Some(n)` revokes the admin key once `n` matching requests were answered:
//! from then on every request, whatever its path, is refused 401 as with a wrong key (until the
//! faults are replaced), the "key revoked mid-run" disaster.
//!
//! The rate limiter is a token bucket refilled at `rps` tokens per second with room for one
//! second's worth; it runs on the real monotonic clock, not the simulated one.

use std::time::{Duration, Instant};

use super::prng::roll;

/// Runtime-changeable fault configuration; the default injects nothing.
#[derive(Clone, Default, Debug)]
pub struct Faults {
    /// Added to every faulty request before it is answered.
    pub latency: Duration,
    /// Share of faulty requests answered 500 `api_error` or 529 `overloaded_error`.
    pub error_rate: f64,
    /// Share of faulty requests whose connection breaks (the response body errors immediately).
    pub drop_rate: f64,
    /// Share of faulty requests that would succeed whose 200 body is truncated or not JSON.
    pub malformed_rate: f64,
    /// Makes the users list return an empty page, the "empty member list" disaster.
    pub empty_members: bool,
    /// Only requests whose path contains this text are faulty (and counted).
    pub path_contains: Option<String>,
    /// Only matching requests after this many matching ones are faulty.
    pub after_requests: u64,
    /// Revokes the key after this many matching requests: every later request gets a 401.
    pub revoke_key_after: Option<u64>,
}

/// How a broken 200 body looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// The first half of the real body, correctly framed.
    Truncated,
    /// Text that is not JSON at all.
    Garbage,
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Answer normally.
    Pass,
    /// Start a 200 answer whose body fails at once, so the client sees a broken connection.
    Drop,
    /// Answer 500 `api_error`.
    InternalError,
    /// Answer 529 `overloaded_error`.
    Overloaded,
    /// Answer normally, but break the body if the answer is a 200.
    Malform(Malformed),
}

/// The decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub latency: Duration,
    pub action: Action,
    pub empty_members: bool,
    /// The key was revoked: answer 401 whatever the key.
    pub key_revoked: bool,
}

impl Plan {
    /// A request that is not faulty.
    pub(crate) const NONE: Plan = Plan {
        latency: Duration::ZERO,
        action: Action::Pass,
        empty_members: false,
        key_revoked: false,
    };

    const REVOKED: Plan = Plan {
        key_revoked: true,
        ..Plan::NONE
    };
}

// Independent salts so the rolls of one request are unrelated to each other.
const SALT_DROP: u64 = 0xD50F;
const SALT_ERROR: u64 = 0xE550;
const SALT_ERROR_KIND: u64 = 0xE55A;
const SALT_MALFORMED: u64 = 0x3A1F;
const SALT_MALFORMED_KIND: u64 = 0x3A1A;

/// Whether a request for `path` is subject to `faults` at all.
pub(crate) fn matches(faults: &Faults, path: &str) -> bool {
    faults
        .path_contains
        .as_deref()
        .is_none_or(|needle| path.contains(needle))
}

/// The plan for the `n`-th matching request (1-based) under `faults`, from `seed` alone.
pub(crate) fn decide(seed: u64, n: u64, faults: &Faults) -> Plan {
    if n <= faults.after_requests {
        return Plan::NONE;
    }
    let action = if roll(seed, n, SALT_DROP) < faults.drop_rate {
        Action::Drop
    } else if roll(seed, n, SALT_ERROR) < faults.error_rate {
        if roll(seed, n, SALT_ERROR_KIND) < 0.5 {
            Action::InternalError
        } else {
            Action::Overloaded
        }
    } else if roll(seed, n, SALT_MALFORMED) < faults.malformed_rate {
        if roll(seed, n, SALT_MALFORMED_KIND) < 0.5 {
            Action::Malform(Malformed::Truncated)
        } else {
            Action::Malform(Malformed::Garbage)
        }
    } else {
        Action::Pass
    };
    Plan {
        latency: faults.latency,
        action,
        empty_members: faults.empty_members,
        key_revoked: false,
    }
}

/// The fault configuration together with its counter of matching requests.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub faults: Faults,
    pub matched: u64,
    /// Set once `revoke_key_after` matching requests were answered.
    pub revoked: bool,
}

impl FaultState {
    /// The state for freshly set faults: the counter at zero, the key valid.
    pub(crate) fn new(faults: Faults) -> FaultState {
        FaultState {
            faults,
            matched: 0,
            revoked: false,
        }
    }

    /// Counts a request and decides its fate.
    pub(crate) fn next_plan(&mut self, seed: u64, path: &str) -> Plan {
        if self.revoked {
            return Plan::REVOKED;
        }
        if !matches(&self.faults, path) {
            return Plan::NONE;
        }
        if self
            .faults
            .revoke_key_after
            .is_some_and(|n| self.matched >= n)
        {
            self.revoked = true;
            return Plan::REVOKED;
        }
        self.matched += 1;
        decide(seed, self.matched, &self.faults)
    }
}

/// A token bucket; `None` rps means unlimited.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Tokens a second; `None` is unlimited.
    rate: Option<f64>,
    /// The most tokens the bucket holds: the burst a full bucket allows.
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket for `rps` requests per second (a second's worth of burst).
    pub(crate) fn new(rps: Option<u32>) -> Self {
        match rps {
            Some(rps) => RateLimiter::per_window(rps, Duration::from_secs(1)),
            None => RateLimiter {
                rate: None,
                capacity: 0.0,
                tokens: 0.0,
                last: Instant::now(),
            },
        }
    }

    /// A full bucket for a quota of `limit` requests per `window` (e.g. 2 400 a minute): the
    /// whole quota at once, refilled at its average rate.
    pub(crate) fn per_window(limit: u32, window: Duration) -> Self {
        let secs = window.as_secs_f64().max(f64::MIN_POSITIVE);
        RateLimiter {
            rate: Some(f64::from(limit) / secs),
            capacity: f64::from(limit),
            tokens: f64::from(limit),
            last: Instant::now(),
        }
    }

    /// Takes a token, or returns the whole seconds (at least 1) until one is available.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        if rate <= 0.0 {
            // A budget of zero refuses everything; one second is as good a hint as any.
            return Err(1);
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / rate;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(seed: u64, faults: &Faults, n: u64) -> Vec<Action> {
        (1..=n).map(|i| decide(seed, i, faults).action).collect()
    }

    #[test]
    fn decisions_are_deterministic_per_seed() {
        let f = Faults {
            error_rate: 0.3,
            drop_rate: 0.1,
            malformed_rate: 0.2,
            ..Faults::default()
        };
        assert_eq!(plans(42, &f, 500), plans(42, &f, 500));
        assert_ne!(plans(42, &f, 500), plans(43, &f, 500));
        let all = plans(42, &f, 2000);
        let share = |a: fn(&Action) -> bool| all.iter().filter(|x| a(x)).count() as f64 / 2000.0;
        let drops = share(|a| *a == Action::Drop);
        let errors = share(|a| matches!(a, Action::InternalError | Action::Overloaded));
        assert!((0.06..0.14).contains(&drops), "drop share {drops}");
        // Errors are rolled only for requests that were not dropped: 0.9 * 0.3.
        assert!((0.22..0.32).contains(&errors), "error share {errors}");
        assert!(all.contains(&Action::InternalError) && all.contains(&Action::Overloaded));
        assert!(all.contains(&Action::Malform(Malformed::Truncated)));
        assert!(all.contains(&Action::Malform(Malformed::Garbage)));
    }

    #[test]
    fn rate_one_always_fires_and_zero_never() {
        let always = Faults {
            error_rate: 1.0,
            ..Faults::default()
        };
        assert!(plans(1, &always, 1000)
            .iter()
            .all(|a| matches!(a, Action::InternalError | Action::Overloaded)));
        assert!(plans(1, &Faults::default(), 1000)
            .iter()
            .all(|a| *a == Action::Pass));
    }

    #[test]
    fn gating_by_path_and_count() {
        let mut state = FaultState::new(Faults {
            drop_rate: 1.0,
            path_contains: Some("/users".into()),
            after_requests: 4,
            ..Faults::default()
        });
        let mut actions = Vec::new();
        for _ in 0..6 {
            assert_eq!(state.next_plan(9, "/v1/organizations/me"), Plan::NONE);
            actions.push(state.next_plan(9, "/v1/organizations/users").action);
        }
        assert_eq!(
            actions,
            [
                Action::Pass,
                Action::Pass,
                Action::Pass,
                Action::Pass,
                Action::Drop,
                Action::Drop
            ]
        );
    }

    #[test]
    fn a_revoked_key_stays_revoked_for_every_path() {
        let mut state = FaultState::new(Faults {
            path_contains: Some("/api_keys".into()),
            revoke_key_after: Some(2),
            ..Faults::default()
        });
        let revoked = |plan: Plan| plan.key_revoked;
        assert!(!revoked(state.next_plan(1, "/v1/organizations/users")));
        assert!(!revoked(state.next_plan(1, "/v1/organizations/api_keys/a")));
        assert!(!revoked(state.next_plan(1, "/v1/organizations/api_keys/a")));
        assert!(revoked(state.next_plan(1, "/v1/organizations/api_keys/b")));
        assert!(revoked(state.next_plan(1, "/v1/organizations/users")));
        assert!(!revoked(
            FaultState::new(Faults::default()).next_plan(1, "/x")
        ));
    }

    #[test]
    fn token_bucket_limits_and_refills() {
        let start = Instant::now();
        let mut rl = RateLimiter::new(Some(2));
        assert!(rl.try_acquire(start).is_ok());
        assert!(rl.try_acquire(start).is_ok());
        assert_eq!(rl.try_acquire(start), Err(1));
        assert!(rl.try_acquire(start + Duration::from_millis(600)).is_ok());
        let mut slow = RateLimiter::new(Some(1));
        assert!(slow.try_acquire(start).is_ok());
        assert_eq!(slow.try_acquire(start), Err(1));
        let mut none = RateLimiter::new(None);
        assert!((0..10_000).all(|_| none.try_acquire(start).is_ok()));
    }

    #[test]
    fn a_quota_per_window_allows_it_at_once_then_its_average_rate() {
        let start = Instant::now();
        // 120 a minute: two a second on average, all 120 at once from a full bucket.
        let mut rl = RateLimiter::per_window(120, Duration::from_secs(60));
        assert!((0..120).all(|_| rl.try_acquire(start).is_ok()));
        assert_eq!(rl.try_acquire(start), Err(1));
        let later = start + Duration::from_secs(1);
        assert!(rl.try_acquire(later).is_ok());
        assert!(rl.try_acquire(later).is_ok());
        assert_eq!(rl.try_acquire(later), Err(1));
        // A long pause refills it to the quota, not beyond.
        let much_later = start + Duration::from_secs(3600);
        assert!((0..120).all(|_| rl.try_acquire(much_later).is_ok()));
        assert!(rl.try_acquire(much_later).is_err());
    }
}
