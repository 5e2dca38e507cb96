//! A tiny glob matcher for exemption key names.
//!
//! It owns exactly two wildcards: `*` (any run of characters, including none) and `?` (exactly one
//! character). There is no escaping, no character classes and no case folding: key names are
//! compared as written, so `ci-*` does not match `CI-deploy`. It must stay allocation-light and
//! never recurse, because patterns come from configuration and should not be able to blow the
//! stack.

/// True when `name` matches `pattern` in full.
///
/// The classic greedy algorithm with one backtrack point: when a later character fails, the most
/// recent `*` absorbs one more character and matching resumes. That is linear in practice and
/// `O(len(pattern) * len(name))` at worst.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // The position of the last `*` seen and the name position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    // Let the star swallow one more character and retry after it.
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    // The name is used up: only trailing stars may remain in the pattern.
    pattern[p..].iter().all(|&c| c == '*')
}
