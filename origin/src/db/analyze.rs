//! Query analysis: `EXPLAIN (FORMAT JSON)` of one SELECT/WITH query — never executed (no
//! `ANALYZE`, inside a read-only transaction, under a statement timeout that also bounds the
//! planning), refused when it calls a volatile function — reduced to cost, rows, the indexes
//! used, sequential scans with filters, and recommendations; and index suggestions for a
//! table.

use std::ops::ControlFlow;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlparser::ast::{Expr, Query, SetExpr, Statement, visit_expressions};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::DbError;
use super::pool::DbPool;

/// A sequential scan the planner chose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeqScan {
    /// The table.
    pub table: String,
    /// Its filter, if any.
    pub filter: Option<String>,
    /// Rows the planner expects.
    pub rows: f64,
}

/// The analysis of one query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryAnalysis {
    /// Estimated total cost.
    pub total_cost: f64,
    /// Estimated rows.
    pub plan_rows: f64,
    /// Indexes the plan uses.
    pub indexes: Vec<String>,
    /// Sequential scans in the plan.
    pub seq_scans: Vec<SeqScan>,
    /// What to do about it.
    pub recommendations: Vec<String>,
    /// The planner's plan tree.
    pub plan: Value,
}

/// Longest an analysis (planning included) may take.
pub const ANALYZE_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks that `sql` is exactly one SELECT (or WITH … SELECT) query; returns the names of
/// the functions it calls (lower case, without schema).
pub fn check_read_only(sql: &str) -> Result<Vec<String>, DbError> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| DbError::Refused(format!("the query does not parse: {e}")))?;
    match statements.as_slice() {
        [Statement::Query(query)] if reads_only(query) => {
            let mut functions: Vec<String> = Vec::new();
            let _ = visit_expressions(&statements, |expr| {
                if let Expr::Function(f) = expr {
                    let name = f.name.to_string().to_lowercase();
                    let name = name.rsplit('.').next().unwrap_or(&name).trim_matches('"');
                    if !functions.iter().any(|n| n == name) {
                        functions.push(name.to_string());
                    }
                }
                ControlFlow::<()>::Continue(())
            });
            Ok(functions)
        }
        [Statement::Query(_)] => Err(DbError::Refused(
            "data-modifying WITH clauses cannot be analyzed; send a plain SELECT".into(),
        )),
        [] => Err(DbError::Refused("no statement given".into())),
        [_] => Err(DbError::Refused(
            "only a single SELECT or WITH query can be analyzed".into(),
        )),
        _ => Err(DbError::Refused(format!(
            "{} statements given; send exactly one SELECT or WITH query",
            statements.len()
        ))),
    }
}

/// Whether a query (and every WITH clause in it) only reads.
fn reads_only(query: &Query) -> bool {
    let ctes_read = query
        .with
        .as_ref()
        .is_none_or(|with| with.cte_tables.iter().all(|cte| reads_only(&cte.query)));
    ctes_read && body_reads_only(&query.body)
}

fn body_reads_only(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => true,
        SetExpr::Query(q) => reads_only(q),
        SetExpr::SetOperation { left, right, .. } => {
            body_reads_only(left) && body_reads_only(right)
        }
        _ => false,
    }
}

fn walk(node: &Value, indexes: &mut Vec<String>, scans: &mut Vec<SeqScan>) {
    if let Some(index) = node.get("Index Name").and_then(Value::as_str)
        && !indexes.iter().any(|i| i == index)
    {
        indexes.push(index.to_string());
    }
    if node.get("Node Type").and_then(Value::as_str) == Some("Seq Scan") {
        scans.push(SeqScan {
            table: node
                .get("Relation Name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            filter: node
                .get("Filter")
                .and_then(Value::as_str)
                .map(str::to_string),
            rows: node.get("Plan Rows").and_then(Value::as_f64).unwrap_or(0.0),
        });
    }
    for child in node
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk(child, indexes, scans);
    }
}

/// Columns named in a filter such as `(voter_id = 'x'::text)`.
fn filter_columns(filter: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in filter.split(" AND ") {
        let left = part
            .trim_start_matches('(')
            .split([' ', '=', '<', '>'])
            .next()
            .unwrap_or("");
        let column = left.rsplit('.').next().unwrap_or(left).trim_matches('"');
        if !column.is_empty()
            && column
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !out.iter().any(|c| c == column)
        {
            out.push(column.to_string());
        }
    }
    out
}

/// Explains `sql` on `pool`'s database without running it.
pub async fn analyze_query(pool: &DbPool, sql: &str) -> Result<QueryAnalysis, DbError> {
    let functions = check_read_only(sql)?;
    let mut conn = pool.get().await?;
    let tx = conn.build_transaction().read_only(true).start().await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        ANALYZE_TIMEOUT.as_millis()
    ))
    .await?;
    if !functions.is_empty() {
        let volatile: Vec<String> = tx
            .query(
                "SELECT DISTINCT proname::text FROM pg_proc WHERE proname = ANY($1) AND provolatile = 'v' ORDER BY 1",
                &[&functions],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !volatile.is_empty() {
            return Err(DbError::Refused(format!(
                "the query calls volatile functions ({}); analyze it without them",
                volatile.join(", ")
            )));
        }
    }
    let row = tx
        .query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &[])
        .await?;
    tx.rollback().await?;
    let explained: Value = row.get(0);
    let plan = explained
        .get(0)
        .and_then(|p| p.get("Plan"))
        .cloned()
        .ok_or_else(|| DbError::Query("EXPLAIN returned no plan".into()))?;
    let (mut indexes, mut seq_scans) = (Vec::new(), Vec::new());
    walk(&plan, &mut indexes, &mut seq_scans);
    let recommendations = seq_scans
        .iter()
        .filter_map(|scan| {
            let filter = scan.filter.as_ref()?;
            let columns = filter_columns(filter);
            (!columns.is_empty()).then(|| {
                format!(
                    "sequential scan of {} filtered on {filter}: consider CREATE INDEX ON {} ({})",
                    scan.table,
                    scan.table,
                    columns.join(", ")
                )
            })
        })
        .collect();
    Ok(QueryAnalysis {
        total_cost: plan
            .get("Total Cost")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        plan_rows: plan.get("Plan Rows").and_then(Value::as_f64).unwrap_or(0.0),
        indexes,
        seq_scans,
        recommendations,
        plan,
    })
}

/// An index worth adding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexSuggestion {
    /// The column.
    pub column: String,
    /// Why.
    pub reason: String,
    /// The statement to run.
    pub sql: String,
}

/// Suggests indexes for `table`: when it is read mostly by sequential scans, its selective
/// columns (many distinct values, per `pg_stats`) that no index starts with.
pub async fn suggest_indexes(pool: &DbPool, table: &str) -> Result<Vec<IndexSuggestion>, DbError> {
    if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DbError::Refused(format!(
            "{table:?} is not a plain table name"
        )));
    }
    let conn = pool.get().await?;
    let usage = conn
        .query_opt(
            "SELECT seq_scan, COALESCE(idx_scan, 0), n_live_tup FROM pg_stat_user_tables WHERE relname = $1",
            &[&table],
        )
        .await?
        .ok_or_else(|| DbError::Refused(format!("no table named {table:?}")))?;
    let (seq, idx, live): (i64, i64, i64) = (usage.get(0), usage.get(1), usage.get(2));
    if seq <= idx || live < 1000 {
        return Ok(Vec::new());
    }
    let rows = conn
        .query(
            "SELECT s.attname::text, s.n_distinct::float8 FROM pg_stats s \
             WHERE s.tablename = $1 AND s.schemaname = current_schema() \
             AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                             WHERE i.indrelid = $1::regclass AND a.attname = s.attname) \
             ORDER BY s.attname",
            &[&table],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let (column, n_distinct): (String, f64) = (r.get(0), r.get(1));
            // Negative n_distinct is a fraction of the rows; positive is a count.
            let distinct = if n_distinct < 0.0 { -n_distinct * live as f64 } else { n_distinct };
            (distinct >= 100.0 || (live > 0 && distinct / live as f64 > 0.1)).then(|| IndexSuggestion {
                reason: format!("{seq} sequential scans against {idx} index scans; {column} has about {distinct:.0} distinct values"),
                sql: format!("CREATE INDEX CONCURRENTLY ON {table} ({column})"),
                column,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_read_query_is_accepted() {
        assert!(check_read_only("SELECT * FROM votes WHERE voter_id = 'a'").is_ok());
        assert!(check_read_only("WITH t AS (SELECT 1) SELECT * FROM t").is_ok());
        for bad in [
            "DELETE FROM votes",
            "SELECT 1; DROP TABLE votes",
            "UPDATE votes SET option_id = 1",
            "",
            "SELEKT 1",
            "WITH d AS (DELETE FROM votes RETURNING *) SELECT * FROM d",
        ] {
            assert!(check_read_only(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn filter_columns_are_found() {
        assert_eq!(
            filter_columns("((voter_id = 'x'::text) AND (election_id > 3))"),
            ["voter_id", "election_id"]
        );
    }
}
