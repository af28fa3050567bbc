# evault's built-in gate policy (docs/gates.md), written in Rego over the gate input document.
# The test suite checks that it reaches the same decisions as the TOML built-in policy.
# Store it with `evault gate policy set docs/examples/gate-default.rego`.

package evault.gate

import rego.v1

required := {
	"staging": ["test-report", "sbom", "vuln-scan", "rollback-plan"],
	"production": ["test-report", "sbom", "vuln-scan", "rollback-plan", "approval"],
}

deny contains msg if {
	not required[input.environment]
	msg := sprintf("no gate policy covers environment '%s'", [input.environment])
}

deny contains msg if {
	some kind in required[input.environment]
	count(object.get(input.evidence, kind, [])) == 0
	msg := sprintf("no %s recorded", [kind])
}

deny contains msg if {
	required[input.environment]
	some t in input.tests
	not t.readable
	msg := sprintf("cannot tell whether the tests of %s passed: %s", [t.id, t.problem])
}

deny contains msg if {
	required[input.environment]
	failed := sum([n |
		some t in input.tests
		n := t.failed + t.errors
	])
	failed > 0
	msg := sprintf("%d test case(s) failed", [failed])
}

deny contains "no test case ran" if {
	required[input.environment]
	count(input.tests) > 0
	sum([n |
		some t in input.tests
		n := t.tests
	]) == 0
}

open(severity) := [v |
	some v in input.vulnerabilities
	v.severity == severity
	not v.suppressed
]

valid_exception(id) if {
	some x in input.exceptions
	x.id == id
	x.decision == "approve"
	x.current
	x.by_approver
	x.role == "approver"
}

covered(v) if {
	some id in v.exceptions
	valid_exception(id)
}

deny contains msg if {
	required[input.environment]
	count(open("critical")) > 0
	msg := sprintf("%d critical vulnerabilities after VEX", [count(open("critical"))])
}

uncovered_high := [v | some v in open("high"); not covered(v)]

deny contains msg if {
	input.environment == "production"
	count(uncovered_high) > 3
	msg := sprintf("%d high vulnerabilities without an exception", [count(uncovered_high)])
}

warn contains msg if {
	input.environment == "production"
	count(uncovered_high) <= 3
	count(open("high")) > 3
	msg := "high vulnerabilities above 3 accepted by exception"
}

warn contains msg if {
	input.environment == "staging"
	count(open("high")) > 3
	msg := sprintf("%d high vulnerabilities after VEX", [count(open("high"))])
}

counted contains a.approver if {
	some a in input.approvals
	a.decision == "approve"
	a.current
	a.by_approver
	a.role == "approver"
	not a.approver_pushed
}

deny contains msg if {
	input.environment == "production"
	some a in input.approvals
	a.decision == "reject"
	a.current
	msg := sprintf("rejected by %s", [a.approver])
}

deny contains "no valid approval for production" if {
	input.environment == "production"
	count(counted) < 1
}
