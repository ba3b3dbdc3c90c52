//! The 7-day windows of the trend rules, kept so that their size depends on how a
//! patient measures, not on how many readings arrive.
//!
//! A patient whose devices upload often (or a load test that sends a cuff's readings
//! every minute) would otherwise grow an engine by one entry a reading for a week.
//!
//! - [`BpSessions`]: BP readings summed per session (readings each within the session
//!   gap of the one before, `clinical/rules.md` "Averaging / sessions"). A session
//!   enters a window whole when any of its readings is in it. Every query the trend
//!   rules make of a window is answered from the sums: the mean of its readings, the
//!   mean of each session, the days it covers.
//! - [`DailyHighs`]: fasting glucose readings, less the ones no query can need. The
//!   rule asks, per local day, "is there a reading at or above the limit in the
//!   window?"; a window cuts a day at most once, from below (its start) or from above
//!   (its end). A reading is dropped when its day holds another reading at least as
//!   high measured no later, and one at least as high measured no earlier: any window
//!   that holds it holds one of those two. What is left is exact for every limit.
//!
//! Times are nanoseconds since 1970 (`engine::nanos`).

/// A BP session in a trend window: its span and its readings' sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionSum {
    pub first: i64,
    pub last: i64,
    pub readings: u32,
    pub systolic: i64,
    pub diastolic: i64,
}

/// BP sessions in time order; between two of them more than the session gap.
#[derive(Debug, Default)]
pub(crate) struct BpSessions(Vec<SessionSum>);

impl BpSessions {
    /// Adds a reading measured at `t`; it joins (and may bridge) the sessions it is
    /// within `gap` of, whatever order readings come in.
    pub fn insert(&mut self, t: i64, systolic: i32, diastolic: i32, gap: i64) {
        let mut s = SessionSum {
            first: t,
            last: t,
            readings: 1,
            systolic: i64::from(systolic),
            diastolic: i64::from(diastolic),
        };
        // One session to start with (a home measures once or twice a day; 100 000
        // engines hold these).
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1);
        }
        // Sessions end-ordered as they are start-ordered (they do not overlap): the
        // ones this reading joins are a run from the first that ends in reach.
        let from = self.0.partition_point(|x| x.last < t.saturating_sub(gap));
        let mut to = from;
        while let Some(x) = self.0.get(to).filter(|x| x.first <= t.saturating_add(gap)) {
            s = SessionSum {
                first: s.first.min(x.first),
                last: s.last.max(x.last),
                readings: s.readings.saturating_add(x.readings),
                systolic: s.systolic + x.systolic,
                diastolic: s.diastolic + x.diastolic,
            };
            to += 1;
        }
        self.0.splice(from..to, [s]);
    }

    /// The sessions with a reading in `(after, until]`, a span no shorter than the
    /// session gap (so that no window falls between two readings of a session).
    pub fn overlapping(&self, after: i64, until: i64) -> &[SessionSum] {
        let from = self.0.partition_point(|x| x.last <= after);
        let to = self.0.partition_point(|x| x.first <= until);
        &self.0[from..to.max(from)]
    }

    /// Drops the sessions that ended before `t`.
    pub fn forget_before(&mut self, t: i64) {
        forget_older(&mut self.0, t, |x| x.last);
    }

    #[cfg(test)]
    pub fn all(&self) -> &[SessionSum] {
        &self.0
    }
}

/// Readings (time, value) in time order, less those that no query of a day's highest
/// value in a window needs (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct DailyHighs(Vec<(i64, f64)>);

impl DailyHighs {
    /// Adds a reading measured at `t` on the local day `[day.0, day.1)`, or no day
    /// (then it is kept and never dropped: always exact, merely larger).
    pub fn insert(&mut self, t: i64, value: f64, day: Option<(i64, i64)>) {
        let Some((start, end)) = day.filter(|(s, e)| *s <= t && t < *e) else {
            insert_in_time(&mut self.0, (t, value), |e| e.0);
            return;
        };
        let from = self.0.partition_point(|e| e.0 < start);
        let to = self.0.partition_point(|e| e.0 < end);
        if covered(&self.0[from..to], (t, value), None) {
            return;
        }
        insert_in_time(&mut self.0, (t, value), |e| e.0);
        // Only the new reading can have made others redundant; all that are now are
        // dropped together (no two kept readings are equal, so each dropped one keeps
        // a witness on either side among those left).
        let day = &self.0[from..=to];
        let kept: Vec<(i64, f64)> = day
            .iter()
            .enumerate()
            .filter(|&(i, e)| !(e.1 <= value && covered(day, *e, Some(i))))
            .map(|(_, e)| *e)
            .collect();
        if kept.len() < day.len() {
            self.0.splice(from..=to, kept);
        }
    }

    /// The readings kept, in time order.
    pub fn iter(&self) -> impl Iterator<Item = &(i64, f64)> {
        self.0.iter()
    }

    /// Drops the readings measured before `t`.
    pub fn forget_before(&mut self, t: i64) {
        forget_older(&mut self.0, t, |e| e.0);
    }
}

/// Puts `entry` in a window (in time order) after every entry of its time or earlier.
pub(crate) fn insert_in_time<T>(window: &mut Vec<T>, entry: T, time: fn(&T) -> i64) {
    let t = time(&entry);
    let at = window.partition_point(|e| time(e) <= t);
    window.insert(at, entry);
}

/// Drops the entries of a window (in time order) from before `t`: its first ones.
pub(crate) fn forget_older<T>(window: &mut Vec<T>, t: i64, time: fn(&T) -> i64) {
    let old = window.partition_point(|e| time(e) < t);
    window.drain(..old);
}

/// Whether `day` (one day's readings, `skip` aside) holds a reading at least as high
/// as `r` measured no later, and one measured no earlier.
fn covered(day: &[(i64, f64)], r: (i64, f64), skip: Option<usize>) -> bool {
    let others = || {
        day.iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != skip)
            .map(|(_, e)| e)
    };
    others().any(|e| e.0 <= r.0 && e.1 >= r.1) && others().any(|e| e.0 >= r.0 && e.1 >= r.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GAP: i64 = 180;

    /// The sessions of readings chained one by one, in time order (the definition).
    fn chained(readings: &[(i64, i32, i32)]) -> Vec<SessionSum> {
        let mut sorted = readings.to_vec();
        sorted.sort_by_key(|r| r.0);
        let mut out: Vec<SessionSum> = Vec::new();
        for &(t, s, d) in &sorted {
            match out.last_mut() {
                Some(x) if t - x.last <= GAP => {
                    x.last = t;
                    x.readings += 1;
                    x.systolic += i64::from(s);
                    x.diastolic += i64::from(d);
                }
                _ => out.push(SessionSum {
                    first: t,
                    last: t,
                    readings: 1,
                    systolic: i64::from(s),
                    diastolic: i64::from(d),
                }),
            }
        }
        out
    }

    proptest! {
        /// Sessions built reading by reading, in any order, are those of the sorted
        /// readings chained; a window holds the sessions with a reading in it.
        #[test]
        fn sessions_in_any_order_are_the_chained_ones(
            readings in prop::collection::vec((0i64..3_000, 80i32..220, 40i32..130), 0..40),
            after in -100i64..3_100,
            span in GAP..2_000,
        ) {
            let mut w = BpSessions::default();
            for &(t, s, d) in &readings {
                w.insert(t, s, d, GAP);
            }
            let want = chained(&readings);
            prop_assert_eq!(w.all(), &want[..]);
            let until = after + span;
            let inside: Vec<SessionSum> = want
                .iter()
                .filter(|x| readings.iter().any(|r| r.0 > after && r.0 <= until
                    && r.0 >= x.first && r.0 <= x.last))
                .copied()
                .collect();
            prop_assert_eq!(w.overlapping(after, until), &inside[..]);
            w.forget_before(after);
            let kept: Vec<SessionSum> = want.iter().filter(|x| x.last >= after).copied().collect();
            prop_assert_eq!(w.all(), &kept[..]);
        }

        /// For every window and every limit, the days with a reading at or above the
        /// limit are the same in the pruned readings as in all of them.
        #[test]
        fn daily_highs_answer_as_all_readings(
            readings in prop::collection::vec((0i64..400, 0u8..12), 0..60),
            day_length in 50i64..120,
            after in -50i64..450,
            span in 100i64..400,
            limit in 0u8..12,
        ) {
            let day_of = |t: i64| t.div_euclid(day_length);
            let mut w = DailyHighs::default();
            for &(t, v) in &readings {
                let d = day_of(t);
                w.insert(t, f64::from(v), Some((d * day_length, (d + 1) * day_length)));
            }
            // A window is longer than a day: it cuts a day at most once.
            let until = after + span.max(day_length);
            let days = |it: &mut dyn Iterator<Item = (i64, f64)>| {
                it.filter(|(t, v)| *t > after && *t <= until && *v >= f64::from(limit))
                    .map(|(t, _)| day_of(t))
                    .collect::<std::collections::BTreeSet<_>>()
            };
            let want = days(&mut readings.iter().map(|&(t, v)| (t, f64::from(v))));
            let got = days(&mut w.iter().copied());
            prop_assert_eq!(got, want);
            // At most two readings a day per distinct value, whatever arrived.
            prop_assert!(w.iter().count() <= 2 * 12 * (400 / 50 + 2));
        }
    }

    #[test]
    fn a_day_of_repeated_readings_keeps_its_two_ends() {
        let mut w = DailyHighs::default();
        for t in 0..1_000 {
            w.insert(t, 7.5, Some((0, 10_000)));
        }
        let kept: Vec<_> = w.iter().copied().collect();
        assert_eq!(kept, vec![(0, 7.5), (999, 7.5)]);
        // A higher one between them: a window ending before it still needs the first.
        // The same reading twice is kept once.
        w.insert(500, 8.0, Some((0, 10_000)));
        w.insert(500, 8.0, Some((0, 10_000)));
        let kept: Vec<_> = w.iter().copied().collect();
        assert_eq!(kept, vec![(0, 7.5), (500, 8.0), (999, 7.5)]);
    }

    #[test]
    fn a_reading_with_no_day_is_kept() {
        let mut w = DailyHighs::default();
        w.insert(5, 9.0, None);
        w.insert(5, 9.0, None);
        assert_eq!(w.iter().count(), 2);
    }

    #[test]
    fn readings_every_minute_stay_one_session() {
        let mut w = BpSessions::default();
        for i in 0..10_000 {
            w.insert(i * 60, 150, 90, GAP);
        }
        assert_eq!(w.all().len(), 1);
        assert_eq!(w.all()[0].readings, 10_000);
    }
}
