//! Voter credentials for load runs: the CSV file `surge-origin voters issue` writes
//! (`voter_id,code` with a header line). Each virtual user logs in with its own.

use std::path::Path;

/// One voter's id and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The voter id.
    pub voter_id: String,
    /// Their voting code.
    pub code: String,
}

/// The credentials of a run, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub Vec<Credential>);

impl Credentials {
    /// Reads a codes file; errors name the line.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses `voter_id,code` lines after the header.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, header)) if header.trim() == "voter_id,code" => {}
            _ => {
                return Err(
                    "the first line must be `voter_id,code` (the file `surge-origin voters issue --out` writes)".into(),
                );
            }
        }
        let mut out = Vec::new();
        for (n, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let (voter_id, code) = line
                .split_once(',')
                .filter(|(v, c)| !v.is_empty() && !c.is_empty() && !c.contains(','))
                .ok_or_else(|| format!("line {}: write `voter_id,code`", n + 1))?;
            surge_shared::voter::validate_voter_id(voter_id)
                .map_err(|e| format!("line {}: {e}", n + 1))?;
            out.push(Credential {
                voter_id: voter_id.to_string(),
                code: code.trim().to_string(),
            });
        }
        if out.is_empty() {
            return Err("no credentials after the header".into());
        }
        Ok(Self(out))
    }

    /// The `i`-th credential, wrapping around.
    pub fn nth(&self, i: usize) -> Option<&Credential> {
        (!self.0.is_empty()).then(|| &self.0[i % self.0.len()])
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issued_file_reads_back_and_bad_lines_are_named() {
        let c =
            Credentials::parse("voter_id,code\ne1-ab,AAAAA-BBBBB\n\ne1-cd,CCCCC\n").expect("valid");
        assert_eq!(c.len(), 2);
        assert_eq!(c.nth(3).map(|c| c.voter_id.as_str()), Some("e1-cd"));
        assert!(Credentials::parse("id,code\na,b\n").is_err());
        assert_eq!(
            Credentials::parse("voter_id,code\na,b\nbroken\n"),
            Err("line 3: write `voter_id,code`".into())
        );
        assert!(Credentials::parse("voter_id,code\na b,c\n").is_err());
        assert!(Credentials::parse("voter_id,code\n").is_err());
    }
}
