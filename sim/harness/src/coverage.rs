//! What a sweep exercised: for each coverage counter (bumped by the system
//! through `hostio::coverage`, or read from the history by the scenario),
//! in how many seeds it was reached; and the scenario's floors, each a
//! share of the seeds it applies to that must reach its counter. "0 failed"
//! means something only with the floors met.
//!
//! A sweep is a sample: a counter whose seeds reach it in 3 % of all seeds
//! is reached by none of 26 seeds about one sweep in two. So a floor is
//! missed only when the sweep shows the counter's rate below it: were the
//! counter reached in exactly the floor's share of the seeds, a sweep of
//! that many seeds would reach it this rarely (or more rarely) with
//! probability below [`SIGNIFICANCE`] (a one-sided exact binomial test).
//! A share below the floor that so few seeds cannot tell from it is printed
//! as such, and does not fail the sweep.

use crate::scenario::Floor;
use crate::schedule::Schedule;
use serde::Serialize;
use std::collections::BTreeMap;

/// Fewer seeds than this: floors are reported, not enforced (a share of a
/// handful of seeds says little).
pub const MIN_SEEDS_FOR_FLOORS: u64 = 50;

/// A floor is missed when a counter reached in exactly the floor's share
/// of the seeds would give a sweep's count or fewer with a probability
/// below this.
pub const SIGNIFICANCE: f64 = 0.05;

/// P(X <= k) for X ~ Binomial(n, p), summed in log space so that large
/// sweeps do not underflow (0.65^10000 is 0 as an `f64`).
pub fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    // ln P(X = i), from ln P(X = 0) = n ln(1 - p) upwards, summed as
    // exp(max) * sum, rescaled whenever a term exceeds the largest so far.
    let mut l = n as f64 * lq;
    let (mut max, mut sum) = (l, 1.0f64);
    for i in 0..k {
        l += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + lp - lq;
        if l > max {
            sum = sum * (max - l).exp() + 1.0;
            max = l;
        } else {
            sum += (l - max).exp();
        }
    }
    (max + sum.ln()).exp().min(1.0)
}

/// The coverage of a sweep, seed by seed.
#[derive(Default)]
pub struct Tally {
    seeds: u64,
    /// counter -> seeds that reached it.
    reached: BTreeMap<String, u64>,
    /// floor index -> (seeds it applies to, of those the ones that reached it).
    floors: Vec<(u64, u64)>,
}

/// One row of the table.
#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    pub counter: String,
    /// Seeds that reached it.
    pub seeds: u64,
    /// Of all seeds run.
    pub share: f64,
    /// The floor on it, if any: its minimum share, the seeds it applies
    /// to, the share of those that reached it, and whether it holds. A
    /// counter with several floors has a row for each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<FloorResult>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FloorResult {
    pub min_share: f64,
    pub applies_to: u64,
    pub share: f64,
    /// Were the counter reached in exactly `min_share` of the seeds: the
    /// probability that this many seeds reach it as rarely as these did,
    /// or more rarely (1 when the share is at or above the floor).
    pub p_value: f64,
    /// Not missed: at or above the floor, or below it by no more than
    /// chance explains (`p_value` >= [`SIGNIFICANCE`]), or no seed it
    /// applies to.
    pub holds: bool,
    /// The name of the seeds it applies to ([`Floor::of`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<&'static str>,
}

impl FloorResult {
    /// Below its floor, but by no more than chance explains.
    pub fn below_by_chance(&self) -> bool {
        self.holds && self.applies_to > 0 && self.share < self.min_share
    }

    /// A floor below its share, for a line of its own: "'C' reached in 3 %
    /// of 200 seeds, floor 7 % (P = 0.012 that a counter at the floor is
    /// reached this rarely{tail})".
    pub fn shortfall_text(&self, counter: &str, tail: &str) -> String {
        format!(
            "'{counter}' reached in {:.0} % of {}, floor {:.0} % ({} that a counter at the floor is reached this rarely{tail})",
            self.share * 100.0,
            self.seeds_text(),
            self.min_share * 100.0,
            p_text(self.p_value)
        )
    }

    /// "300 seeds", "120 mix seeds".
    pub fn seeds_text(&self) -> String {
        match self.of {
            Some(of) => format!("{} {of} seeds", self.applies_to),
            None => format!("{} seeds", self.applies_to),
        }
    }
}

impl Tally {
    pub fn new(floors: &[Floor]) -> Tally {
        Tally {
            floors: vec![(0, 0); floors.len()],
            ..Tally::default()
        }
    }

    /// Adds one seed: its schedule and what it reached.
    pub fn add(&mut self, floors: &[Floor], s: &Schedule, reached: &BTreeMap<String, u64>) {
        self.seeds += 1;
        for (name, &n) in reached {
            if n > 0 {
                *self.reached.entry(name.clone()).or_default() += 1;
            }
        }
        for (i, f) in floors.iter().enumerate() {
            if f.applies_to(s) {
                self.floors[i].0 += 1;
                self.floors[i].1 += u64::from(reached.get(f.counter).is_some_and(|&n| n > 0));
            }
        }
    }

    pub fn seeds(&self) -> u64 {
        self.seeds
    }

    /// Every counter reached and every floor's, by name; a counter with
    /// several floors has a row per floor, in the order they were declared.
    pub fn rows(&self, floors: &[Floor]) -> Vec<Row> {
        let mut names: Vec<String> = self.reached.keys().cloned().collect();
        for f in floors {
            if !names.iter().any(|n| n == f.counter) {
                names.push(f.counter.to_string());
            }
        }
        names.sort();
        let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let mut rows = Vec::new();
        for name in names {
            let seeds = self.reached.get(&name).copied().unwrap_or(0);
            let mut results: Vec<Option<FloorResult>> = floors
                .iter()
                .enumerate()
                .filter(|(_, f)| f.counter == name)
                .map(|(i, f)| {
                    let (applies_to, hit) = self.floors[i];
                    let s = share(hit, applies_to);
                    let p_value = if s >= f.min_share {
                        1.0
                    } else {
                        binomial_cdf(hit, applies_to, f.min_share)
                    };
                    Some(FloorResult {
                        min_share: f.min_share,
                        applies_to,
                        share: s,
                        p_value,
                        // No seed it applies to: nothing to hold.
                        holds: applies_to == 0 || p_value >= SIGNIFICANCE,
                        of: f.seeds,
                    })
                })
                .collect();
            if results.is_empty() {
                results.push(None);
            }
            for floor in results {
                rows.push(Row {
                    share: share(seeds, self.seeds),
                    counter: name.clone(),
                    seeds,
                    floor,
                });
            }
        }
        rows
    }
}

/// The table `sweep` prints.
pub fn table(rows: &[Row], seeds: u64) -> String {
    let mut out = format!("coverage over {seeds} seeds (seeds that reached each counter):\n");
    for r in rows {
        let floor = match &r.floor {
            Some(f) if f.applies_to == 0 => format!(
                "  floor {:>3.0} %: no {}seed it applies to",
                f.min_share * 100.0,
                f.of.map(|o| format!("{o} ")).unwrap_or_default()
            ),
            Some(f) => format!(
                "  floor {:>3.0} % of {}: {:.0} %{}",
                f.min_share * 100.0,
                f.seeds_text(),
                f.share * 100.0,
                if !f.holds {
                    format!("  MISSED ({})", p_text(f.p_value))
                } else if f.below_by_chance() {
                    format!("  below, within chance ({})", p_text(f.p_value))
                } else {
                    String::new()
                }
            ),
            None => String::new(),
        };
        out += &format!(
            "  {:>6} {:>5.1} %  {}{floor}\n",
            r.seeds,
            r.share * 100.0,
            r.counter
        );
    }
    out
}

/// A probability in a line of text: "P = 0.012", "P = 0.547", "P = 0.0018",
/// "P < 0.0001"; with four decimals near [`SIGNIFICANCE`], so that a
/// missed floor never reads "P = 0.050" beside one within chance.
fn p_text(p: f64) -> String {
    if p < 1e-4 {
        "P < 0.0001".to_string()
    } else if p < 0.01 || (SIGNIFICANCE * 0.8..SIGNIFICANCE * 1.2).contains(&p) {
        format!("P = {p:.4}")
    } else {
        format!("P = {p:.3}")
    }
}

/// Applies a `--floor NAME=PCT` flag: sets every floor of that counter (a
/// counter may have one per kind of seed), or adds one over all seeds.
pub fn set_floor(floors: &mut Vec<Floor>, flag: &str) -> Result<(), String> {
    let (name, share) = parse_floor(flag)?;
    let mut found = false;
    for f in floors.iter_mut().filter(|f| f.counter == name) {
        f.min_share = share;
        found = true;
    }
    if !found {
        floors.push(Floor::new(Box::leak(name.into_boxed_str()), share));
    }
    Ok(())
}

/// Parses `NAME=PCT` (e.g. `raft: a snapshot taken=30`).
pub fn parse_floor(s: &str) -> Result<(String, f64), String> {
    let err = || format!("bad floor '{s}': use COUNTER=PERCENT, e.g. 'raft: a snapshot taken=30'");
    let (name, pct) = s.rsplit_once('=').ok_or_else(err)?;
    let pct: f64 = pct
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| err())?;
    if !(0.0..=100.0).contains(&pct) || name.trim().is_empty() {
        return Err(err());
    }
    Ok((name.trim().to_string(), pct / 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{FaultSelection, HOST_KINDS};

    fn schedule(seed: u64) -> Schedule {
        let sel = FaultSelection::Only(vec![]);
        let mut s = Schedule::draw("x", seed, None, &HOST_KINDS, &sel, 3, 1_000);
        s.set_param(
            "mode",
            if seed.is_multiple_of(2) {
                "even"
            } else {
                "odd"
            },
        );
        s
    }

    #[test]
    fn floors_hold_or_are_missed_over_the_seeds_they_apply_to() {
        let floors = [
            Floor::new("a", 0.5),
            Floor::new("b", 0.9).when(|s| s.param::<String>("mode").as_deref() == Some("even")),
            Floor::new("never", 0.01),
        ];
        let mut t = Tally::new(&floors);
        for seed in 0..10 {
            let mut reached = BTreeMap::new();
            if seed < 5 {
                reached.insert("a".to_string(), 2);
            }
            if seed % 2 == 0 {
                reached.insert("b".to_string(), 1);
            }
            t.add(&floors, &schedule(seed), &reached);
        }
        let rows = t.rows(&floors);
        let row = |n: &str| rows.iter().find(|r| r.counter == n).unwrap();
        assert_eq!(row("a").seeds, 5);
        assert!(row("a").floor.as_ref().unwrap().holds, "5 of 10 >= 50 %");
        let b = row("b").floor.as_ref().unwrap();
        assert_eq!((b.applies_to, b.share, b.holds), (5, 1.0, true));
        let none = Floor::new("x", 0.5).when(|_| false);
        let mut t2 = Tally::new(&[none]);
        t2.add(&[none], &schedule(1), &BTreeMap::new());
        let r = &t2.rows(&[none])[0];
        assert!(r.floor.as_ref().unwrap().holds, "applies to no seed: holds");
        assert!(table(&t2.rows(&[none]), 1).contains("no seed it applies to"));
        // Ten seeds cannot tell a counter never reached from one reached
        // in 1 % of seeds (0.99^10 = 0.904).
        let never = row("never").floor.as_ref().unwrap();
        assert!(never.holds && never.below_by_chance() && never.share == 0.0);
        assert!((never.p_value - 0.99f64.powi(10)).abs() < 1e-12);
        assert!(
            table(&rows, 10)
                .contains("never  floor   1 % of 10 seeds: 0 %  below, within chance (P = 0.904)"),
            "{}",
            table(&rows, 10)
        );
    }

    /// A floor is missed when the sweep shows the counter below it, not
    /// when a few seeds happen to fall short.
    #[test]
    fn a_floor_is_missed_only_when_the_seeds_show_the_rate_below_it() {
        let floors = [Floor::new("r", 0.07)];
        let sweep = |n: u64, hits: u64| {
            let mut t = Tally::new(&floors);
            for seed in 0..n {
                let mut reached = BTreeMap::new();
                if seed < hits {
                    reached.insert("r".to_string(), 1);
                }
                t.add(&floors, &schedule(seed), &reached);
            }
            t.rows(&floors).remove(0).floor.unwrap()
        };
        // 6 of 200 (3 %) against 7 %: P(X <= 6) = 0.0119 for X ~ B(200, 0.07).
        let f = sweep(200, 6);
        assert!(!f.holds && (f.p_value - 0.011873).abs() < 1e-5, "{f:?}");
        assert!(table(
            &[Row {
                counter: "r".into(),
                seeds: 6,
                share: 0.03,
                floor: Some(f)
            }],
            200
        )
        .contains("r  floor   7 % of 200 seeds: 3 %  MISSED (P = 0.012)"));
        // 2 of 40 (5 %) against 7 %: chance explains it.
        let f = sweep(40, 2);
        assert!(f.holds && f.below_by_chance() && f.p_value > 0.4, "{f:?}");
        // At the floor or above: P = 1.
        let f = sweep(100, 7);
        assert!(f.holds && !f.below_by_chance() && f.p_value == 1.0);
        // Never reached in 1000 seeds: far beyond chance.
        let f = sweep(1000, 0);
        assert!(!f.holds && f.p_value < 1e-30, "{f:?}");
    }

    #[test]
    fn binomial_tails_match_known_values() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1e-300);
        assert!(close(binomial_cdf(0, 60, 0.01), 0.99f64.powi(60)));
        // B(10, 0.5): P(X <= 3) = (1 + 10 + 45 + 120) / 1024.
        assert!(close(binomial_cdf(3, 10, 0.5), 176.0 / 1024.0));
        assert_eq!(binomial_cdf(10, 10, 0.5), 1.0);
        assert_eq!(binomial_cdf(3, 10, 0.0), 1.0);
        assert_eq!(binomial_cdf(9, 10, 1.0), 0.0);
        // No underflow where (1 - p)^n does: 0.65^10000 is 0 as an f64.
        let p = binomial_cdf(3400, 10_000, 0.35);
        assert!(p > 0.0 && p < 0.05, "{p}");
        let p = binomial_cdf(3500, 10_000, 0.35);
        assert!(p > 0.5 && p < 0.51, "{p}");
        // Printed: four decimals near the 5 % line.
        assert_eq!(p_text(0.0496), "P = 0.0496");
        assert_eq!(p_text(0.0504), "P = 0.0504");
        assert_eq!(p_text(0.547), "P = 0.547");
        assert_eq!(p_text(0.0018), "P = 0.0018");
        assert_eq!(p_text(1e-9), "P < 0.0001");
    }

    #[test]
    fn a_counter_may_have_a_floor_per_kind_of_seed() {
        let even = |s: &Schedule| s.param::<String>("mode").as_deref() == Some("even");
        let odd = |s: &Schedule| s.param::<String>("mode").as_deref() == Some("odd");
        let mut floors = vec![
            Floor::new("c", 0.8).when(even).of("even"),
            Floor::new("c", 0.4).when(odd).of("odd"),
        ];
        let run = |floors: &[Floor]| {
            let mut t = Tally::new(floors);
            for seed in 0..100 {
                // Every even seed reaches it, one odd seed in five.
                let mut reached = BTreeMap::new();
                if seed % 2 == 0 || seed % 10 == 1 {
                    reached.insert("c".to_string(), 1);
                }
                t.add(floors, &schedule(seed), &reached);
            }
            t.rows(floors)
        };
        let rows = run(&floors);
        assert_eq!(rows.len(), 2, "a row per floor: {rows:?}");
        assert!(rows.iter().all(|r| r.counter == "c" && r.seeds == 60));
        let (e, o) = (
            rows[0].floor.as_ref().unwrap(),
            rows[1].floor.as_ref().unwrap(),
        );
        assert_eq!((e.applies_to, e.share, e.holds), (50, 1.0, true));
        assert_eq!((o.applies_to, o.share, o.holds), (50, 0.2, false));
        let text = table(&rows, 100);
        assert!(
            text.contains("c  floor  80 % of 50 even seeds: 100 %\n"),
            "{text}"
        );
        assert!(
            text.contains("c  floor  40 % of 50 odd seeds: 20 %  MISSED"),
            "{text}"
        );
        // --floor sets both; an unknown counter gets a floor of its own.
        set_floor(&mut floors, "c=10").unwrap();
        set_floor(&mut floors, "d=1").unwrap();
        assert_eq!(floors.len(), 3);
        assert!(floors[..2].iter().all(|f| f.min_share == 0.1));
        assert!(run(&floors)
            .iter()
            .all(|r| r.counter != "c" || r.floor.as_ref().unwrap().holds));
        assert!(set_floor(&mut floors, "c").is_err());
    }

    #[test]
    fn floor_flags_parse_with_clear_errors() {
        assert_eq!(
            parse_floor("raft: a snapshot taken=30").unwrap(),
            ("raft: a snapshot taken".to_string(), 0.3)
        );
        assert_eq!(parse_floor("x=5%").unwrap(), ("x".to_string(), 0.05));
        assert!(parse_floor("x").unwrap_err().contains("COUNTER=PERCENT"));
        assert!(parse_floor("x=150").is_err());
    }
}
