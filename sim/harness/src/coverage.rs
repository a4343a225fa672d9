//! What a sweep exercised: for each coverage counter (bumped by the system
//! through `hostio::coverage`, or read from the history by the scenario),
//! in how many seeds it was reached; and the scenario's floors, each a
//! share of the seeds it applies to that must reach its counter. "0 failed"
//! means something only with the floors met.

use crate::scenario::Floor;
use crate::schedule::Schedule;
use serde::Serialize;
use std::collections::BTreeMap;

/// Fewer seeds than this: floors are reported, not enforced (a share of a
/// handful of seeds says little).
pub const MIN_SEEDS_FOR_FLOORS: u64 = 50;

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
    pub holds: bool,
    /// The name of the seeds it applies to ([`Floor::of`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<&'static str>,
}

impl FloorResult {
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
                    Some(FloorResult {
                        min_share: f.min_share,
                        applies_to,
                        share: s,
                        // No seed it applies to: nothing to hold.
                        holds: applies_to == 0 || s >= f.min_share,
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
                if f.holds { "" } else { "  MISSED" }
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
        s.set_param("mode", if seed % 2 == 0 { "even" } else { "odd" });
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
        let never = row("never").floor.as_ref().unwrap();
        assert!(!never.holds && never.share == 0.0);
        assert!(table(&rows, 10).contains("never  floor   1 % of 10 seeds: 0 %  MISSED"));
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
            for seed in 0..10 {
                // Every even seed reaches it, one odd seed in five.
                let mut reached = BTreeMap::new();
                if seed % 2 == 0 || seed == 1 {
                    reached.insert("c".to_string(), 1);
                }
                t.add(floors, &schedule(seed), &reached);
            }
            t.rows(floors)
        };
        let rows = run(&floors);
        assert_eq!(rows.len(), 2, "a row per floor: {rows:?}");
        assert!(rows.iter().all(|r| r.counter == "c" && r.seeds == 6));
        let (e, o) = (
            rows[0].floor.as_ref().unwrap(),
            rows[1].floor.as_ref().unwrap(),
        );
        assert_eq!((e.applies_to, e.share, e.holds), (5, 1.0, true));
        assert_eq!((o.applies_to, o.share, o.holds), (5, 0.2, false));
        let text = table(&rows, 10);
        assert!(
            text.contains("c  floor  80 % of 5 even seeds: 100 %\n"),
            "{text}"
        );
        assert!(
            text.contains("c  floor  40 % of 5 odd seeds: 20 %  MISSED"),
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
