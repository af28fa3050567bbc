//! What a JUnit XML report says: how many test cases ran, failed, errored and were skipped.
//!
//! Counted from the `<testcase>` elements, wherever they are nested (`<testsuites>`,
//! `<testsuite>`, suites in suites): a case with a `<failure>` child failed, one with an
//! `<error>` child errored (an error wins over a failure), one with `<skipped>` was skipped, any
//! other passed. The `tests`/`failures` attributes of the suites are not believed: tools write
//! them inconsistently, and the cases themselves are the record. Read with the bounded streaming
//! scanner of [`crate::xml_probe`], so hundreds of MiB of captured test output cost no memory.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use super::ExtractError;
use crate::xml_probe::{XmlProbeError, XmlTag, scan_xml};

/// The outcome counts of one JUnit report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCounts {
    /// Test cases in the report.
    pub tests: u64,
    /// Cases with a `<failure>`.
    pub failed: u64,
    /// Cases with an `<error>`.
    pub errors: u64,
    /// Cases with `<skipped>`.
    pub skipped: u64,
}

impl TestCounts {
    /// Cases that ran and passed.
    pub fn passed(&self) -> u64 {
        self.tests - self.failed - self.errors - self.skipped
    }
}

/// The case being read: its depth and what its children said.
struct Case {
    depth: usize,
    failed: bool,
    errored: bool,
    skipped: bool,
}

/// Counts the test cases of the JUnit report read from `reader`.
pub fn test_counts<R: BufRead>(reader: R) -> Result<TestCounts, ExtractError> {
    let mut counts = TestCounts::default();
    let mut case: Option<Case> = None;
    let tally = |counts: &mut TestCounts, c: &Case| {
        counts.tests += 1;
        if c.errored {
            counts.errors += 1;
        } else if c.failed {
            counts.failed += 1;
        } else if c.skipped {
            counts.skipped += 1;
        }
    };
    let facts = scan_xml(reader, &mut |tag| match tag {
        XmlTag::Start { name, depth, empty } => match (&mut case, name) {
            (None, "testcase") => {
                let c = Case {
                    depth,
                    failed: false,
                    errored: false,
                    skipped: false,
                };
                if empty {
                    tally(&mut counts, &c);
                } else {
                    case = Some(c);
                }
            }
            (Some(c), child) if depth == c.depth + 1 => match child {
                "failure" => c.failed = true,
                "error" => c.errored = true,
                "skipped" => c.skipped = true,
                _ => {}
            },
            _ => {}
        },
        XmlTag::End { depth } => {
            if let Some(c) = case.take_if(|c| c.depth == depth) {
                tally(&mut counts, &c);
            }
        }
    })
    .map_err(|e| match e {
        XmlProbeError::Syntax(e) => ExtractError(format!("not a readable JUnit report: {e}")),
        XmlProbeError::Io(e) => ExtractError(format!("cannot read the JUnit report: {e}")),
    })?;
    if facts.root != "testsuites" && facts.root != "testsuite" {
        return Err(ExtractError(format!(
            "not a JUnit report: the root element is <{}>, not <testsuites> or <testsuite>",
            facts.root
        )));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(xml: &str) -> TestCounts {
        test_counts(xml.as_bytes()).unwrap()
    }

    #[test]
    fn cases_are_counted_by_what_their_children_say() {
        let report = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="checkout-api" tests="99" failures="0">
  <testsuite name="cart" tests="3">
    <testcase classname="cart" name="adds an item"/>
    <testcase classname="cart" name="applies a coupon"><system-out>ok</system-out></testcase>
    <testcase classname="cart" name="rounds"><failure message="1 != 2">trace</failure></testcase>
  </testsuite>
  <testsuite name="payments">
    <testsuite name="nested">
      <testcase name="refuses an expired card"><error type="Timeout"/><failure/></testcase>
      <testcase name="3-D secure"><skipped/></testcase>
      <testcase name="mentions failure"><system-out><![CDATA[<failure/>]]></system-out></testcase>
    </testsuite>
  </testsuite>
</testsuites>"#;
        let c = counts(report);
        assert_eq!(
            c,
            TestCounts {
                tests: 6,
                failed: 1,
                errors: 1,
                skipped: 1
            }
        );
        assert_eq!(c.passed(), 3);
        assert_eq!(counts("<testsuite name=\"empty\"/>"), TestCounts::default());
    }

    #[test]
    fn other_documents_and_broken_xml_are_errors() {
        let err = test_counts("<bom><testcase/></bom>".as_bytes()).unwrap_err();
        assert!(err.0.contains("root element is <bom>"), "{err}");
        let err = test_counts("<testsuite><testcase>".as_bytes()).unwrap_err();
        assert!(err.0.contains("not a readable JUnit report"), "{err}");
    }

    #[test]
    fn huge_captured_output_streams() {
        let mut xml = String::from("<testsuite><testcase name=\"noisy\"><system-out>");
        xml.push_str(&"x".repeat(8 << 20));
        xml.push_str("</system-out></testcase></testsuite>");
        assert_eq!(counts(&xml).tests, 1);
    }
}
