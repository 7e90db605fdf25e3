//! What the bench reads from MySQL itself: the server-wide counters of `SHOW GLOBAL
//! STATUS` around a run (statements, prepares, commits, fsyncs), as deltas per chat.
//! The counters are global: anything else talking to the same server in the meantime
//! counts too. Not responsible for MySQL's CPU (procfs reads that).

use std::collections::BTreeMap;

use anyhow::Context;
use mysql_async::prelude::Queryable;

/// The counters a run records (their names in `SHOW GLOBAL STATUS`), in the order reports show them.
pub const COUNTERS: [&str; 12] = [
    "Questions",
    "Com_stmt_prepare",
    "Com_stmt_execute",
    "Com_stmt_close",
    "Com_call_procedure",
    "Com_insert",
    "Com_update",
    "Com_select",
    "Com_commit",
    "Handler_commit",
    "Innodb_data_fsyncs",
    "Innodb_os_log_fsyncs",
];

/// Deltas of [`COUNTERS`] over a run, by name.
pub type Counters = BTreeMap<String, u64>;

/// Of `SHOW GLOBAL STATUS`'s rows, the [`COUNTERS`] with a numeric value.
pub fn pick(rows: impl IntoIterator<Item = (String, String)>) -> Counters {
    rows.into_iter()
        .filter(|(name, _)| COUNTERS.iter().any(|c| c.eq_ignore_ascii_case(name)))
        .filter_map(|(name, value)| {
            let canonical = COUNTERS.iter().find(|c| c.eq_ignore_ascii_case(&name))?;
            Some(((*canonical).to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// What grew from `before` to `after` (a counter missing on either side is left out;
/// one that went down, after a `FLUSH STATUS`, counts from zero).
pub fn delta(before: &Counters, after: &Counters) -> Counters {
    after
        .iter()
        .filter_map(|(name, b)| before.get(name).map(|a| (name.clone(), b.checked_sub(*a).unwrap_or(*b))))
        .collect()
}

/// `counter` per `per` (chats, rows, transactions), if both are there.
pub fn per(counters: Option<&Counters>, counter: &str, per: u64) -> Option<f64> {
    let v = counters?.get(counter)?;
    (per > 0).then(|| *v as f64 / per as f64)
}

/// Reads the global counters over one pooled connection (its own statements count
/// too: one `SHOW GLOBAL STATUS` per reading).
#[derive(Debug, Clone)]
pub struct StatusReader {
    pool: mysql_async::Pool,
}

impl StatusReader {
    /// A reader for `url` (`mysql://USER:PASS@HOST:PORT/DB`; any user may read the status).
    pub fn new(url: &str) -> anyhow::Result<StatusReader> {
        let opts = mysql_async::Opts::from_url(url).context("--mysql-status is not a mysql:// URL")?;
        Ok(StatusReader { pool: mysql_async::Pool::new(opts) })
    }

    /// The counters now.
    pub async fn read(&self) -> anyhow::Result<Counters> {
        let mut conn = self.pool.get_conn().await.context("connecting to MySQL for its status")?;
        let rows: Vec<(String, String)> =
            conn.query("SHOW GLOBAL STATUS").await.context("SHOW GLOBAL STATUS")?;
        Ok(pick(rows))
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(v: &[(&str, u64)]) -> Counters {
        v.iter().map(|(n, x)| ((*n).to_owned(), *x)).collect()
    }

    #[test]
    fn picks_the_counters_it_knows() {
        let rows = [("Questions", "120"), ("Uptime", "5"), ("com_commit", "7"), ("Innodb_data_fsyncs", "x")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()));
        assert_eq!(pick(rows), counters(&[("Com_commit", 7), ("Questions", 120)]));
    }

    #[test]
    fn deltas_and_rates() {
        let a = counters(&[("Questions", 100), ("Com_commit", 10), ("Com_stmt_prepare", 50)]);
        let b = counters(&[("Questions", 350), ("Com_commit", 3), ("Innodb_data_fsyncs", 9)]);
        let d = delta(&a, &b);
        assert_eq!(d, counters(&[("Com_commit", 3), ("Questions", 250)]));
        assert_eq!(per(Some(&d), "Questions", 1000), Some(0.25));
        assert_eq!(per(Some(&d), "Innodb_data_fsyncs", 1000), None);
        assert_eq!(per(Some(&d), "Questions", 0), None);
        assert_eq!(per(None, "Questions", 10), None);
    }
}
