//! The results section of bench/RESULTS.md, from the JSON files a
//! `deploy/bench.sh` suite leaves in one folder. The script writes the
//! header (machine, commit, settings); this renders targets and tables.

use std::fmt::Write as _;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::report::{
    IdleReport, SweepReport, Verdict, anomalies, cpu_verdict, group_verdict, idle_text, idle_verdict,
    rate_verdict, runs_table, verdicts_table,
};

/// The suite's results, each absent when its step did not run or failed.
#[derive(Debug, Default)]
pub struct Suite {
    /// One-to-one, every message to a user on the other node.
    pub cross: Option<SweepReport>,
    /// One-to-one, every message to a user on the same node.
    pub same: Option<SweepReport>,
    /// One-to-one through nginx.
    pub nginx: Option<SweepReport>,
    /// Groups of 10.
    pub group10: Option<SweepReport>,
    /// Groups of 50.
    pub group50: Option<SweepReport>,
    /// Idle connections.
    pub idle: Option<IdleReport>,
}

fn load<T: DeserializeOwned>(dir: &Path, file: &str, problems: &mut Vec<String>) -> Option<T> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{file}: {e}"));
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{file}: {e}"));
            None
        }
    }
}

impl Suite {
    /// Reads whatever the folder has; the second value lists what was missing or unreadable.
    pub fn load(dir: &Path) -> (Suite, Vec<String>) {
        let mut problems = Vec::new();
        let suite = Suite {
            cross: load(dir, "cross.json", &mut problems),
            same: load(dir, "same.json", &mut problems),
            nginx: load(dir, "nginx.json", &mut problems),
            group10: load(dir, "group10.json", &mut problems),
            group50: load(dir, "group50.json", &mut problems),
            idle: load(dir, "idle.json", &mut problems),
        };
        (suite, problems)
    }

    /// The targets of issue 6 against what was measured.
    pub fn verdicts(&self) -> Vec<Verdict> {
        vec![
            rate_verdict(
                "cross-node one-to-one: zero loss and p99 < 50 ms at ≥ 20,000 msgs/s",
                self.cross.as_ref(),
                50.0,
                20_000.0,
            ),
            rate_verdict(
                "same-node one-to-one: zero loss and p99 < 10 ms at ≥ 30,000 msgs/s",
                self.same.as_ref(),
                10.0,
                30_000.0,
            ),
            cpu_verdict(
                "server CPU ≤ 10 µs per delivered message, same-node (both nodes)",
                self.same.as_ref(),
                10.0,
            ),
            cpu_verdict(
                "server CPU ≤ 25 µs per delivered message, cross-node (both nodes, Redis excluded)",
                self.cross.as_ref(),
                25.0,
            ),
            group_verdict(
                "group of 50 over both nodes: ≥ 50,000 deliveries/s, zero loss, p99 to the last member < 100 ms",
                self.group50.as_ref(),
                50_000.0,
                100.0,
            ),
            idle_verdict(
                "10,000 idle logged-in connections on one node at ≤ 4 KiB each",
                self.idle.as_ref(),
                4.0,
            ),
        ]
    }

    /// The Markdown results.
    pub fn markdown(&self, problems: &[String]) -> String {
        let mut out = String::new();
        out.push_str("## Targets\n\n");
        out.push_str(&verdicts_table(&self.verdicts()).to_markdown());
        out.push_str(
            "\nCPU per message is read at the sweep's best rate (else its first row); the part \
             \"in the kernel\" is the nodes' system time per delivery (system calls, the loopback \
             TCP stack, waking the readers). ✔/✘ compare with issue 6; `?` means the step did not \
             produce a result.\n",
        );
        let sections: [(&str, &Option<SweepReport>); 5] = [
            ("Cross-node one-to-one (every message to a user on the other node)", &self.cross),
            ("Same-node one-to-one (every message to a user on the sender's node)", &self.same),
            ("One-to-one through nginx (placement is nginx's round robin)", &self.nginx),
            ("Group chat, groups of 10", &self.group10),
            ("Group chat, groups of 50", &self.group50),
        ];
        for (title, sweep) in sections {
            let _ = write!(out, "\n## {title}\n\n");
            let Some(s) = sweep else {
                out.push_str("Not measured.\n");
                continue;
            };
            if let Some(r) = s.rows.first() {
                let shape = match (r.group_size, r.groups) {
                    (Some(g), Some(k)) => format!("{k} groups of {g} ({} users)", r.users),
                    _ => format!("{} users", r.users),
                };
                let cross = r.cross.map(|c| format!(", cross share {c}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{shape} on {} ({}{cross}), {}-byte messages, {} s per rate, sent by the clock.\n",
                    r.nodes.join(", "),
                    r.placement,
                    r.msg_bytes,
                    r.duration_s
                );
            }
            out.push_str(&runs_table(&s.rows, s.best_rate).to_markdown());
            out.push('\n');
            match s.best_rate {
                Some(rate) => {
                    let _ = writeln!(
                        out,
                        "`*` highest rate with zero loss and p99 < {} ms: {rate:.0}.",
                        s.max_p99_ms
                    );
                }
                None => {
                    let _ = writeln!(out, "No rate had zero loss and p99 < {} ms.", s.max_p99_ms);
                }
            }
            for line in anomalies(&s.rows) {
                let _ = writeln!(out, "- {line}");
            }
        }
        out.push_str("\n## Idle connections\n\n");
        match &self.idle {
            Some(r) => {
                out.push_str("```\n");
                out.push_str(&idle_text(r));
                out.push_str("```\n");
            }
            None => out.push_str("Not measured.\n"),
        }
        if !problems.is_empty() {
            out.push_str("\n## Missing results\n\n");
            for p in problems {
                let _ = writeln!(out, "- {p}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_folder_renders_with_question_marks() {
        let dir = std::env::temp_dir().join(format!("chat-bench-suite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("idle.json"), "{not json").expect("write");
        let (suite, problems) = Suite::load(&dir);
        assert_eq!(problems.len(), 6);
        let md = suite.markdown(&problems);
        assert!(md.contains("| target | measured | met |"));
        assert_eq!(md.matches("| ? |").count(), 6);
        assert!(md.contains("idle.json"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
