//! Registered voters: who may log in and vote in which elections.
//!
//! - `code`: voting codes and their peppered hashes (only hashes are stored).
//! - `throttle`: failed-login throttling per voter-and-network and per network.
//!
//! Here: registering an import (or N new voters) with codes issued once, and the 0600
//! codes file operators distribute from.

pub mod code;
pub mod throttle;

use std::io::Write;
use std::path::Path;

use surge_shared::admin::{AdminError, ImportVotersRequest, IssuedCode, VoterEntry, VotersReport};

use super::model::Registration;
use super::store::{ElectionStore, StoreError};
use code::{CodeHasher, VotingCode};

/// Registers `request`'s voters in `store`, issuing codes to those given none; voters
/// already registered keep their codes.
pub async fn register(
    store: &dyn ElectionStore,
    hasher: &CodeHasher,
    request: &ImportVotersRequest,
) -> Result<VotersReport, RegisterError> {
    request.validate().map_err(RegisterError::Invalid)?;
    let (registrations, mut issued) = prepare(request, hasher).map_err(RegisterError::Invalid)?;
    let total = registrations.len();
    let existing = store
        .register(registrations)
        .await
        .map_err(RegisterError::Store)?;
    issued.retain(|c| !existing.contains(&c.voter_id));
    Ok(VotersReport {
        registered: total - existing.len(),
        existing,
        issued,
    })
}

/// Why voters could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The request names a bad field.
    #[error("{0}")]
    Invalid(AdminError),
    /// The store failed; nothing or part of the request was registered (repeat it: voters
    /// already registered are skipped).
    #[error("{0}")]
    Store(StoreError),
}

/// Registrations for a validated import, issuing a code to every entry that has none.
pub fn prepare(
    request: &ImportVotersRequest,
    hasher: &CodeHasher,
) -> Result<(Vec<Registration>, Vec<IssuedCode>), AdminError> {
    let mut registrations = Vec::with_capacity(request.voters.len());
    let mut issued = Vec::new();
    for (i, entry) in request.voters.iter().enumerate() {
        let code = match &entry.code {
            Some(text) => VotingCode::parse(text).map_err(|e| AdminError {
                field: format!("voters[{i}].code"),
                message: e.to_string(),
            })?,
            None => {
                let code = fresh_code()?;
                issued.push(IssuedCode {
                    voter_id: entry.voter_id.clone(),
                    code: code.display(),
                });
                code
            }
        };
        registrations.push(Registration {
            voter_id: entry.voter_id.clone(),
            elections: entry.elections.clone(),
            code_hash: hasher.hash(&entry.voter_id, &code),
        });
    }
    Ok((registrations, issued))
}

fn fresh_code() -> Result<VotingCode, AdminError> {
    VotingCode::generate().map_err(|e| AdminError {
        field: ".".into(),
        message: format!("the operating system gave no randomness ({e}); no code was issued"),
    })
}

/// An import of `count` new voters for `election`, with fresh random ids (`e<election>-…`)
/// and no codes yet (so [`prepare`] issues them).
pub fn new_voters(election: i64, count: usize) -> Result<ImportVotersRequest, AdminError> {
    let mut voters = Vec::with_capacity(count);
    for _ in 0..count {
        let mut id = [0u8; 10];
        getrandom::fill(&mut id).map_err(|e| AdminError {
            field: ".".into(),
            message: format!("the operating system gave no randomness ({e})"),
        })?;
        voters.push(VoterEntry {
            voter_id: format!("e{election}-{}", hex::encode(id)),
            elections: vec![election],
            code: None,
        });
    }
    Ok(ImportVotersRequest { voters })
}

/// Reads a registry export: one JSON object per line (`{"voter_id": "…", "elections": [1],
/// "code": "…"}`, `code` optional); blank lines are skipped. Errors name the line.
pub fn parse_json_lines(text: &str) -> Result<Vec<VoterEntry>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: VoterEntry = surge_shared::admin::parse_json(line.as_bytes())
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        out.push(entry);
    }
    if out.is_empty() {
        return Err("the file lists no voters: write one JSON object per line".into());
    }
    Ok(out)
}

/// A new CSV file of issued codes (`voter_id,code`), readable only by its owner; codes are
/// flushed to disk as they are appended, so none is lost if a later step fails.
pub struct CodesFile {
    file: std::fs::File,
}

impl CodesFile {
    /// Creates the file (never replacing one) with mode 0600 and writes the header.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        file.write_all(b"voter_id,code\n")?;
        Ok(Self { file })
    }

    /// Appends `codes` and syncs them to disk.
    pub fn append(&mut self, codes: &[IssuedCode]) -> std::io::Result<()> {
        let mut text = String::with_capacity(codes.len() * 64);
        for c in codes {
            text.push_str(&c.voter_id);
            text.push(',');
            text.push_str(&c.code);
            text.push('\n');
        }
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> CodeHasher {
        CodeHasher::new(b"pepper-0123456789abcdef0123456789ab".to_vec())
    }

    #[test]
    fn an_import_keeps_given_codes_and_issues_missing_ones() {
        let given = VotingCode::generate().expect("randomness");
        let request = ImportVotersRequest {
            voters: vec![
                VoterEntry {
                    voter_id: "a".into(),
                    elections: vec![1, 2],
                    code: Some(given.display()),
                },
                VoterEntry {
                    voter_id: "b".into(),
                    elections: vec![1],
                    code: None,
                },
            ],
        };
        let (regs, issued) = prepare(&request, &hasher()).expect("valid");
        assert_eq!(regs[0].code_hash, hasher().hash("a", &given));
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].voter_id, "b");
        let code = VotingCode::parse(&issued[0].code).expect("issued code parses");
        assert!(hasher().verify("b", &code, Some(&regs[1].code_hash)));
        let bad = ImportVotersRequest {
            voters: vec![VoterEntry {
                code: Some("123".into()),
                ..request.voters[0].clone()
            }],
        };
        assert_eq!(
            prepare(&bad, &hasher()).expect_err("short code").field,
            "voters[0].code"
        );
    }

    #[test]
    fn new_voters_get_distinct_valid_ids() {
        let request = new_voters(7, 50).expect("randomness");
        request.validate().expect("valid import");
        assert!(request.voters.iter().all(|v| v.voter_id.starts_with("e7-")));
    }

    #[test]
    fn json_lines_name_the_bad_line() {
        let ok = parse_json_lines(
            "{\"voter_id\":\"a\",\"elections\":[1]}\n\n{\"voter_id\":\"b\",\"elections\":[1,2]}\n",
        )
        .expect("two voters");
        assert_eq!(ok.len(), 2);
        let err = parse_json_lines("{\"voter_id\":\"a\",\"elections\":[1]}\n{\"voter\":\"b\"}")
            .expect_err("bad second line");
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(parse_json_lines("\n").is_err());
    }

    #[test]
    fn the_codes_file_is_private() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("codes.csv");
        let codes = [IssuedCode {
            voter_id: "a".into(),
            code: "X".into(),
        }];
        CodesFile::create(&path)
            .and_then(|mut f| f.append(&codes))
            .expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "voter_id,code\na,X\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(CodesFile::create(&path).is_err(), "never overwrites");
    }
}
