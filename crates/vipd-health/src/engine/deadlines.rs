//! The deadlines of the probes in flight, in FIFO queues: one per duration (a check's connect
//! or total timeout). A deadline is its probe's start plus that duration and starts only move
//! forward, so each queue is sorted as it is filled: push and pop cost O(1), where one heap of
//! every deadline cost a few percent of the scheduler's CPU at 10,000 checks a second.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// One probe's deadline.
#[derive(Debug)]
pub(super) struct Deadline {
    pub at: Instant,
    pub key: Arc<str>,
    pub generation: u64,
    pub run_id: u64,
    /// The connect timeout (else the total one).
    pub is_connect: bool,
    /// The probe runs on the direct driver.
    pub direct: bool,
}

#[derive(Debug, Default)]
pub(super) struct Deadlines {
    queues: Vec<(Duration, VecDeque<Deadline>)>,
}

impl Deadlines {
    /// Adds `d`, due `after` its probe's start (`d.at`).
    pub fn push(&mut self, after: Duration, d: Deadline) {
        let q = match self.queues.iter_mut().position(|(a, _)| *a == after) {
            Some(i) => &mut self.queues[i].1,
            None => {
                self.queues.push((after, VecDeque::new()));
                &mut self.queues.last_mut().expect("just pushed").1
            }
        };
        // In order by construction; kept sorted whatever happens.
        let at = q.partition_point(|x| x.at <= d.at);
        q.insert(at, d);
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|(_, q)| q.front())
            .map(|d| d.at)
            .min()
    }

    /// The earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        let (i, _) = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, (_, q))| q.front().map(|d| (i, d.at)))
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(_, at)| *at)?;
        let d = self.queues[i].1.pop_front();
        if self.queues[i].1.is_empty() {
            self.queues.swap_remove(i);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(at: Instant, run_id: u64) -> Deadline {
        Deadline {
            at,
            key: Arc::from("k"),
            generation: 1,
            run_id,
            is_connect: false,
            direct: true,
        }
    }

    #[test]
    fn earliest_first_across_queues_and_only_when_due() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut q = Deadlines::default();
        q.push(s, d(t0 + s, 1));
        q.push(2 * s, d(t0 + 2 * s, 2));
        q.push(s, d(t0 + s + s / 2, 3));
        q.push(s, d(t0 + s / 4, 4)); // out of order: still sorted
        assert_eq!(q.next(), Some(t0 + s / 4));
        assert!(q.pop_due(t0).is_none());
        let order: Vec<u64> =
            std::iter::from_fn(|| q.pop_due(t0 + 3 * s).map(|x| x.run_id)).collect();
        assert_eq!(order, [4, 1, 3, 2]);
        assert_eq!(q.next(), None);
    }
}
