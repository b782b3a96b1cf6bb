//! `--labels k=v,...` with per-agent placeholders: `{i}` is the agent's index and `{i%N}` the
//! index modulo N, so one process can simulate agents spread over several groups.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("label {0:?} is not k=v")]
    NotPair(String),
    #[error("label {0:?} has an empty key")]
    EmptyKey(String),
    #[error("bad placeholder in {0:?}: use {{i}} or {{i%N}} with N > 0")]
    Placeholder(String),
}

/// Parsed `--labels`, expanded per agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelTemplate(Vec<(String, String)>);

impl LabelTemplate {
    pub fn parse(text: &str) -> Result<Self, LabelError> {
        let mut pairs = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| LabelError::NotPair(item.to_owned()))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                return Err(LabelError::EmptyKey(item.to_owned()));
            }
            // Validate placeholders once, up front.
            expand_one(k, 0).ok_or_else(|| LabelError::Placeholder(item.to_owned()))?;
            expand_one(v, 0).ok_or_else(|| LabelError::Placeholder(item.to_owned()))?;
            pairs.push((k.to_owned(), v.to_owned()));
        }
        Ok(Self(pairs))
    }

    pub fn expand(&self, index: usize) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| {
                (
                    expand_one(k, index).unwrap_or_else(|| k.clone()),
                    expand_one(v, index).unwrap_or_else(|| v.clone()),
                )
            })
            .collect()
    }
}

/// Replaces `{i}` and `{i%N}`; `None` on a malformed placeholder.
fn expand_one(text: &str, index: usize) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let inner = &rest[start + 1..end];
        let value = match inner.strip_prefix("i%") {
            _ if inner == "i" => index,
            Some(n) => {
                let n: usize = n.parse().ok().filter(|n| *n > 0)?;
                index % n
            }
            None => return None,
        };
        out.push_str(&value.to_string());
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_placeholders_per_agent() {
        let t = LabelTemplate::parse("env=prod, host=h{i},zone=z{i%3}").unwrap();
        let got = t.expand(7);
        let want: BTreeMap<String, String> = [("env", "prod"), ("host", "h7"), ("zone", "z1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rejects_bad_labels() {
        assert_eq!(
            LabelTemplate::parse("env"),
            Err(LabelError::NotPair("env".into()))
        );
        assert_eq!(
            LabelTemplate::parse("=x"),
            Err(LabelError::EmptyKey("=x".into()))
        );
        assert_eq!(
            LabelTemplate::parse("a={j}"),
            Err(LabelError::Placeholder("a={j}".into()))
        );
        assert_eq!(
            LabelTemplate::parse("a={i%0}"),
            Err(LabelError::Placeholder("a={i%0}".into()))
        );
        assert_eq!(LabelTemplate::parse("").unwrap(), LabelTemplate::default());
    }
}
