-- evault metadata index, version 6: indexes for the questions auditors and on-call engineers
-- ask (core/src/query): the deploys and rollbacks of a blueprint, the changes of a period, a
-- vulnerability by id in any case (GHSA ids are mixed case).
CREATE INDEX records_kind_blueprint ON records (kind, blueprint_name, blueprint_version);
CREATE INDEX findings_vuln_nocase ON findings (vuln_id COLLATE NOCASE);
