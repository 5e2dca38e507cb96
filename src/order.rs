//! Sorting slices of large values (a snapshot's keys and members, an audit's findings) without
//! moving each value about log n times.
//!
//! The standard sorts move the elements themselves: sorting 250 000 keys of a few hundred bytes
//! copies gigabytes. [`sort_large_by`] finds the order on indices and then puts each element in
//! its place by following the permutation's cycles, a swap per element.

use std::cmp::Ordering;

/// Sorts `items` by `compare`, stably (equal elements keep their order), moving each element
/// once (a swap) instead of about log n times. Meant for elements of a hundred bytes or more;
/// for small ones the standard sorts are faster.
pub fn sort_large_by<T>(items: &mut [T], mut compare: impl FnMut(&T, &T) -> Ordering) {
    if items.len() < 2 {
        return;
    }
    // order[k] is the index of the element that belongs at position k. Ties are broken by the
    // original index, so the unstable sort of the indices is a stable sort of the elements.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by(|&a, &b| compare(&items[a], &items[b]).then(a.cmp(&b)));
    permute(items, order);
}

/// Merges `a` and `b`, each sorted by `compare`, into one sorted vector; on ties `a`'s element
/// comes first (so merging the sorted halves of a list keeps a stable order). `b` is appended to
/// `a` (give `a` the room for both) and the merged order applied in place: no third vector of
/// the elements, and each moves once.
pub fn merge_sorted_by<T>(
    mut a: Vec<T>,
    mut b: Vec<T>,
    mut compare: impl FnMut(&T, &T) -> Ordering,
) -> Vec<T> {
    let (n, m) = (a.len(), b.len());
    let mut order = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if compare(&a[i], &b[j]) == Ordering::Greater {
            order.push(n + j);
            j += 1;
        } else {
            order.push(i);
            i += 1;
        }
    }
    order.extend(i..n);
    order.extend(n + j..n + m);
    a.append(&mut b);
    permute(&mut a, order);
    a
}

/// Puts `items[order[k]]` at position `k` for every `k` (`order` is a permutation of the
/// indices), following the permutation's cycles: each swap puts one element in its final place,
/// and a placed position is marked by pointing at itself.
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    debug_assert_eq!(items.len(), order.len());
    for start in 0..items.len() {
        let mut at = start;
        loop {
            let from = order[at];
            order[at] = at;
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the cases need no crate and repeat.
    fn numbers(seed: u64, n: usize, modulo: u64) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % modulo
            })
            .collect()
    }

    #[test]
    fn sorts_like_the_standard_stable_sort() {
        // Many ties (modulo small) to check stability; sizes around the edges.
        for (seed, n, modulo) in [
            (1, 0, 10),
            (2, 1, 10),
            (3, 2, 10),
            (4, 17, 3),
            (5, 1000, 7),
            (6, 5000, 1_000_000),
            (7, 300, 1),
        ] {
            let keys = numbers(seed, n, modulo);
            // Each element carries its original position, so a stability break shows.
            let mut ours: Vec<(u64, usize, [u8; 64])> = keys
                .iter()
                .enumerate()
                .map(|(i, &k)| (k, i, [i as u8; 64]))
                .collect();
            let mut expected = ours.clone();
            expected.sort_by_key(|a| a.0);
            sort_large_by(&mut ours, |a, b| a.0.cmp(&b.0));
            assert_eq!(ours, expected, "seed {seed}, n {n}, modulo {modulo}");
        }
    }

    #[test]
    fn merging_two_sorted_lists_keeps_the_order_and_the_first_list_first_on_ties() {
        for (seed, n, m) in [
            (1, 0, 0),
            (2, 0, 5),
            (3, 5, 0),
            (4, 100, 37),
            (5, 1000, 1000),
        ] {
            let tag = |list: Vec<u64>, which: u8| -> Vec<(u64, u8, usize)> {
                let mut list: Vec<_> = list
                    .into_iter()
                    .enumerate()
                    .map(|(i, k)| (k, which, i))
                    .collect();
                list.sort();
                list
            };
            let a = tag(numbers(seed, n, 50), 0);
            let b = tag(numbers(seed + 100, m, 50), 1);
            let mut expected: Vec<_> = a.iter().chain(&b).cloned().collect();
            // Stable by key: a's elements (which 0) before b's among equals, each in its order.
            expected.sort_by_key(|e| e.0);
            let merged = merge_sorted_by(a, b, |x, y| x.0.cmp(&y.0));
            assert_eq!(merged, expected, "seed {seed}");
        }
    }

    #[test]
    fn already_sorted_and_reversed_inputs() {
        let mut sorted: Vec<u32> = (0..100).collect();
        sort_large_by(&mut sorted, |a, b| a.cmp(b));
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        let mut reversed: Vec<u32> = (0..100).rev().collect();
        sort_large_by(&mut reversed, |a, b| a.cmp(b));
        assert_eq!(reversed, (0..100).collect::<Vec<_>>());
    }
}
