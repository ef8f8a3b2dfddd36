//! Which streams of a seed a fuzz run covers, and how they are split among guests.
//!
//! Stream `i` of seed `S` is the same stream whoever runs it ([`super::generator::generate`]
//! depends on `S` and `i` only), so a campaign over a range of indices can be cut into
//! partitions (CI shards: `--partition K/N`) and each partition among guests
//! (`--jobs N`) without changing any stream. Both cuts are strided — partition `K` of
//! `N` takes every `N`-th index starting at the range's `K`-th — so they work on an
//! unbounded range (a time budget) as well, and every part gets a similar share.

/// An arithmetic progression of stream indices: `start`, `start + step`, … below `end`
/// (`None`: unbounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub start: u64,
    pub end: Option<u64>,
    pub step: u64,
}

impl Slice {
    /// Every index of `start..end`.
    pub fn range(start: u64, end: Option<u64>) -> Self {
        Self { start, end, step: 1 }
    }

    /// Part `k` (1-based) of `n`: every `n`-th index of this slice, from its `k`-th.
    /// `k` must be in `1..=n`.
    pub fn part(&self, k: u64, n: u64) -> Self {
        debug_assert!(k >= 1 && k <= n);
        let start = self.start.saturating_add((k - 1).saturating_mul(self.step));
        Self { start, end: self.end, step: self.step.saturating_mul(n) }
    }

    /// The share of guest `job` (0-based) of `jobs`.
    pub fn job(&self, job: u64, jobs: u64) -> Self {
        self.part(job + 1, jobs.max(1))
    }

    /// The `i`-th index of the slice, if it has one.
    pub fn nth(&self, i: u64) -> Option<u64> {
        let x = self.start.checked_add(i.checked_mul(self.step)?)?;
        self.end.is_none_or(|e| x < e).then_some(x)
    }

    /// How many indices it has (`None`: unbounded).
    pub fn len(&self) -> Option<u64> {
        self.end.map(|e| if e <= self.start { 0 } else { (e - self.start).div_ceil(self.step.max(1)) })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Its indices in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..).map_while(|i| self.nth(i))
    }
}

/// `A..B`: stream indices `A` to `B - 1`.
pub fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{s:?} is not a range of stream indices: write A..B (A up to B - 1), e.g. 0..100");
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let (a, b) = (a.trim().parse::<u64>().map_err(|_| bad())?, b.trim().parse::<u64>().map_err(|_| bad())?);
    if a >= b {
        return Err(format!("{s:?} is empty: the end ({b}) must be above the start ({a})"));
    }
    Ok((a, b))
}

/// `K/N`: part `K` (1-based) of `N`.
pub fn parse_partition(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{s:?} is not a partition: write K/N with 1 <= K <= N, e.g. 2/4");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n) = (k.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
    if n == 0 || k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn set(s: &Slice) -> BTreeSet<u64> {
        s.iter().collect()
    }

    #[test]
    fn partitions_are_disjoint_and_cover_the_range() {
        for (start, end) in [(0, 100), (7, 8), (3, 50), (10, 11)] {
            let all = Slice::range(start, Some(end));
            for n in 1..=7 {
                let parts: Vec<BTreeSet<u64>> = (1..=n).map(|k| set(&all.part(k, n))).collect();
                let union: BTreeSet<u64> = parts.iter().flatten().copied().collect();
                assert_eq!(union, set(&all), "{start}..{end} in {n} parts");
                assert_eq!(parts.iter().map(BTreeSet::len).sum::<usize>(), (end - start) as usize, "overlap");
                for (k, p) in parts.iter().enumerate() {
                    assert_eq!(all.part(k as u64 + 1, n).len(), Some(p.len() as u64));
                    // Shares differ by at most one stream.
                    assert!(p.len() + 1 >= ((end - start) / n) as usize);
                }
            }
        }
    }

    #[test]
    fn jobs_split_a_partition_without_changing_its_indices() {
        let part = Slice::range(0, Some(1000)).part(2, 3);
        for jobs in 1..=5 {
            let shares: Vec<BTreeSet<u64>> = (0..jobs).map(|j| set(&part.job(j, jobs))).collect();
            let union: BTreeSet<u64> = shares.iter().flatten().copied().collect();
            assert_eq!(union, set(&part), "{jobs} jobs");
            assert_eq!(shares.iter().map(BTreeSet::len).sum::<usize>(), part.len().unwrap() as usize);
        }
        // One job is the partition itself.
        assert_eq!(part.job(0, 1), part);
    }

    #[test]
    fn unbounded_slices_are_strided() {
        let s = Slice::range(5, None).part(2, 4);
        assert_eq!(s.iter().take(3).collect::<Vec<_>>(), vec![6, 10, 14]);
        assert_eq!(s.len(), None);
        let j = s.job(1, 2);
        assert_eq!(j.iter().take(3).collect::<Vec<_>>(), vec![10, 18, 26]);
        assert!(Slice::range(4, Some(4)).is_empty());
        assert_eq!(Slice::range(u64::MAX - 1, None).iter().count(), 2);
    }

    #[test]
    fn parses_ranges_and_partitions() {
        assert_eq!(parse_range("0..100"), Ok((0, 100)));
        assert_eq!(parse_range("7..8"), Ok((7, 8)));
        assert!(parse_range("8..8").unwrap_err().contains("empty"));
        assert!(parse_range("5").is_err());
        assert!(parse_range("a..b").is_err());
        assert_eq!(parse_partition("2/4"), Ok((2, 4)));
        assert_eq!(parse_partition("1/1"), Ok((1, 1)));
        for bad in ["0/4", "5/4", "1/0", "2", "x/y"] {
            assert!(parse_partition(bad).is_err(), "{bad}");
        }
    }
}
