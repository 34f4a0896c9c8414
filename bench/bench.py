#!/usr/bin/env python3
"""The benchmark driver of leadimport (python3, standard library only).

Started by bench/run, which brings up PostgreSQL, the service, nginx and the C ceiling and hands
their addresses over on the command line. This file generates the data, times the imports through
nginx beside the database's own figures, samples the service's memory, runs wrk, prints the table
and writes the JSON. See bench/README.md for what is measured and how.
"""

import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

MiB = 1024 * 1024
IMPORT_PATH = "/api/campaigns/{campaign}/leads/import-from-list"

# Targets from the issue (printed beside each figure; none of them is a test that fails the run).
TARGET_WRITE_RATIO = 1.25         # endpoint / (a) at >= TARGET_MIN_SIZE members
TARGET_ONE_STATEMENT_RATIO = 1.0  # endpoint / (b) below this (faster than the one statement)
TARGET_MIN_SIZE = 100_000
TARGET_PEAK_MIB = 40.0
TARGET_GROWTH_MIB = 4.0
TARGET_CEILING_RATIO = 0.8
TARGET_422_RPS = 3000.0
TARGET_422_P99_MS = 20.0
TARGET_JOB_RATIO = 1.10           # job time / synchronous import time of the same list
TARGET_JOB_SIZE = 1_000_000       # the job ratio is judged at this size and above
TARGET_GET_JOB_RPS = 3000.0       # GET /api/imports/{id} of a finished job
TARGET_METRICS_COST = 0.03        # the 401 rate lost to recording metrics (issue 15)
TARGET_SCRAPE_MS = 5.0            # GET /metrics with 8 worker processes
TARGET_SELECTED_RATIO = 2.0       # limit 2500 / leadIds 1000 of the big list vs importing a list that size
TARGET_DRY_RUN_RATIO = 0.5        # dry run of the big list / its real import
SELECTION_ROUNDS = 5              # the small timed imports of the selection part: best of this many
JOB_POLL_S = 0.1                  # how often the bench polls a job it started
JOB_STALL_S = 120.0               # a job whose counts do not move for this long fails the run

WS = r"E' \t\n\r\f\x0b'"  # what btrim() removes: the ASCII whitespace
EMAIL_RE = r"'^[^@[:space:][:cntrl:]]+@[^@.[:space:][:cntrl:]]+(\.[^@.[:space:][:cntrl:]]+)+$'"


def log(message):
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# PostgreSQL through psql

class Psql:
    def __init__(self, url):
        self.url = url

    def run(self, sql, quiet=True, timeout=3600):
        """Runs a script in one session; returns stdout. Raises on any SQL error."""
        args = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url]
        if quiet:
            args.insert(1, "-q")
        proc = subprocess.run(args, input=sql, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise BenchError(f"psql failed ({proc.returncode}): {proc.stderr.strip()[:2000]}\n--- SQL ---\n{sql[:1500]}")
        return proc.stdout

    def value(self, sql):
        out = self.run(sql).strip().splitlines()
        return out[-1] if out else ""

    def timed(self, setup, statement, after=""):
        """Runs `setup`, then `statement` with \\timing (the figure is the server round trip of
        that statement alone, as psql measures it), then `after`, in one session. Returns
        (milliseconds, command tag of the statement, stdout of `after`)."""
        script = (
            setup.rstrip() + "\n"
            + "\\echo @@timed-begin\n\\timing on\n" + statement.rstrip().rstrip(";") + ";\n\\timing off\n\\echo @@timed-end\n"
            + after
        )
        out = self.run(script, quiet=False)
        inside, tag, ms, rest = False, None, None, []
        for line in out.splitlines():
            if line == "@@timed-begin":
                inside = True
                continue
            if line == "@@timed-end":
                inside = False
                continue
            if inside:
                m = re.match(r"^Time: ([0-9.]+) ms", line)
                if m:
                    ms = float(m.group(1))
                elif re.match(r"^(INSERT|UPDATE|DELETE|SELECT) ", line):
                    tag = line
            elif ms is not None:
                rest.append(line)
        if ms is None or tag is None:
            raise BenchError(f"could not read the timing of a statement from psql's output:\n{out[-2000:]}")
        return ms, tag, "\n".join(rest)


# --------------------------------------------------------------------------------------------
# Data generation: set-based SQL, one list per (size, storage), usable by both channels.
#
# Member i (0-based) of a list of n:
#   i % 10 in 0..7  valid: a plausible email and a real LinkedIn profile URL (several spellings)
#   i % 10 == 8     invalid for both channels: "not-an-email"-like email, placeholder / company URL
#   i % 10 == 9     a repeat of an earlier valid member k < i, both identities in variant spellings
# so a list of n (a multiple of 10) has 0.8 n valid, 0.1 n invalid and 0.1 n repeats.

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
         "Radia", "Tim", "Katherine", "Dennis", "Hedy", "Linus", "Sophie", "Guido", "Anita", "Niklaus"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy", "Hamilton",
        "Thompson", "Perlman", "Berners-Lee", "Johnson", "Ritchie", "Lamarr", "Torvalds", "Wilson",
        "van Rossum", "Borg", "Wirth", "Kay", "Lamport", "Backus", "Hoare", "Milner", "Codd", "Stonebraker",
        "Goldberg", "Cerf", "Kahn"]
DOMAINS = ["example.com", "acme.io", "mail.example.org", "corp.co.uk", "startup.dev", "bigco.com", "lab.example.net"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
             "Cyberdyne", "Soylent", "Tyrell"]
ROLES = ["Engineer", "Head of Sales", "CTO", "Product Manager", "Recruiter", "Designer", "Data Scientist", "Founder"]


def sql_array(values):
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def people_sql(n):
    """One row per member with its raw fields, as both storages hold them."""
    return f"""
    g AS (
        SELECT i,
               CASE WHEN i % 10 = 8 THEN 'invalid' WHEN i % 10 = 9 THEN 'repeat' ELSE 'valid' END AS kind,
               CASE WHEN i % 10 = 9 THEN 10 * ((i::bigint * 7919) % (i / 10 + 1))::int + (i / 10) % 8 ELSE i END AS k
        FROM generate_series(0, {n} - 1) AS i
    ), p AS (
        SELECT g.*,
               ({sql_array(FIRST)})[k % {len(FIRST)} + 1] AS first,
               ({sql_array(LAST)})[(k / {len(FIRST)}) % {len(LAST)} + 1] AS last,
               ({sql_array(DOMAINS)})[k % {len(DOMAINS)} + 1] AS domain,
               ({sql_array(COMPANIES)})[k % {len(COMPANIES)} + 1] AS company,
               ({sql_array(ROLES)})[k % {len(ROLES)} + 1] AS role,
               (k % 50 = 7) AS pub
        FROM g
    ), q AS (
        SELECT p.*,
               replace(lower(first || '-' || last), ' ', '') || '-' || k AS slug,
               replace(lower(first || '.' || last), ' ', '') || k || '@' || domain AS email_c,
               'https://www.linkedin.com/pub/' || first || '-' || replace(last, ' ', '') || '/' || (k % 97) || '/' || k AS pub_url
        FROM p
    ), people AS (
        SELECT i, kind, k, first, last, company, role,
               role || ' at ' || company || CASE WHEN kind = 'repeat' THEN ' (updated)' ELSE '' END AS headline,
               CASE kind
                   WHEN 'valid' THEN email_c
                   WHEN 'repeat' THEN '  ' || upper(email_c) || ' '
                   ELSE (ARRAY['not-an-email', lower(first) || '@localhost', 'two@@' || domain, NULL])[(i / 10) % 4 + 1]
               END AS email_raw,
               CASE kind
                   WHEN 'valid' THEN CASE WHEN pub THEN pub_url ELSE (ARRAY[
                       'https://www.linkedin.com/in/' || slug,
                       'https://linkedin.com/in/' || slug || '/',
                       'www.linkedin.com/in/' || replace(first || '-' || last, ' ', '') || '-' || k,
                       'https://www.linkedin.com/in/' || slug || '?trk=public_profile'])[k % 4 + 1] END
                   WHEN 'repeat' THEN CASE WHEN pub THEN replace(pub_url, 'https://www.', 'http://uk.') || '/?trk=x' ELSE (ARRAY[
                       'http://www.linkedin.com/in/' || slug || '/',
                       'https://uk.linkedin.com/in/' || slug,
                       'linkedin.com/in/' || upper(slug) || '/',
                       'https://www.linkedin.com/in/' || slug || '?utm_source=share&trk=abc',
                       ' HTTPS://WWW.LINKEDIN.COM/in/' || upper(slug) || '/#about '])[(i / 10) % 5 + 1] END
                   ELSE (ARRAY['imported-' || i, 'https://www.linkedin.com/company/acme-' || i, NULL,
                               'https://www.linkedin.com/in/imported-' || i])[(i / 10) % 4 + 1]
               END AS linkedin_raw
        FROM q
    )"""


def expected_counts(n):
    full, rest = divmod(n, 10)
    valid = 8 * full + min(rest, 8)
    invalid = full + (1 if rest > 8 else 0)
    repeats = n - valid - invalid
    return {"imported": valid, "duplicates": repeats, "invalid": invalid, "errors": 0, "total": n}


def generate_rows_list(db, user, list_id, n, t0):
    sql = f"""
    BEGIN;
    INSERT INTO lists (id, user_id, name, storage) VALUES ('{list_id}', '{user}', 'bench rows {n}', 'rows');
    WITH {people_sql(n)}
    INSERT INTO list_rows (list_id, linkedin_url, profile_data, created_at)
    SELECT '{list_id}', linkedin_raw,
           jsonb_build_object(
               'firstName', CASE WHEN k % 17 = 3 THEN '  ' WHEN k % 13 = 5 THEN ' ' || first || ' ' ELSE first END,
               'lastName', last,
               'currentCompany', company,
               'currentRole', role,
               'headline', headline,
               'location', 'Berlin, Germany',
               'connections', 500 + k % 300,
               'skills', jsonb_build_array('SQL', 'Swift', 'Negotiation'),
               'enrichment', jsonb_build_object('work_email', email_raw, 'provider', 'bench', 'confidence', 0.9)
           ) || CASE WHEN k % 5 = 0 THEN jsonb_build_object('fullName', first || ' ' || last) ELSE '{{}}'::jsonb END,
           '{t0}'::timestamptz + i * interval '1 microsecond'
    FROM people;
    COMMIT;
    """
    db.run(sql)
    return {"list_rows": n}


def generate_leads_list(db, user, list_id, n, t0):
    """Five set-based statements (leads, socials, contacts, attributes, memberships); lead ids
    are derived from the list id and the member's position, so no statement needs another's output.
    They are shaped as version-4 UUIDs (the version and variant digits set), as the contract's
    pattern wants of the ids a `leadIds` filter names."""
    lead_id = f"overlay(overlay(md5('{list_id}:' || i) placing '4' from 13) placing '8' from 17)::uuid"
    sql = f"""
    BEGIN;
    INSERT INTO lists (id, user_id, name, storage) VALUES ('{list_id}', '{user}', 'bench leads {n}', 'leads');
    WITH {people_sql(n)}
    INSERT INTO leads (id, user_id, first_name, last_name, full_name, company, title, headline, created_at, updated_at)
    SELECT {lead_id}, '{user}',
           CASE WHEN k % 10 = 1 THEN NULL WHEN k % 17 = 3 THEN ' ' WHEN k % 13 = 5 THEN ' ' || first || ' ' ELSE first END,
           last,
           CASE WHEN k % 5 = 0 THEN first || ' ' || last END,
           CASE WHEN k % 10 = 2 THEN NULL ELSE company END,
           CASE WHEN k % 10 = 3 THEN '' ELSE role END,
           CASE WHEN k % 10 = 4 THEN NULL ELSE headline END,
           '{t0}', '{t0}'
    FROM people;
    WITH {people_sql(n)}
    INSERT INTO lead_socials (lead_id, network, url)
    SELECT {lead_id}, 'linkedin', linkedin_raw FROM people WHERE linkedin_raw IS NOT NULL;
    WITH {people_sql(n)}
    INSERT INTO lead_contacts (lead_id, kind, value, created_at)
    SELECT {lead_id}, 'work_email', 'n/a', '{t0}'::timestamptz
    FROM people WHERE kind <> 'invalid' AND k % 5 = 1 AND k % 7 <> 3
    UNION ALL
    SELECT {lead_id}, 'work_email', email_raw, '{t0}'::timestamptz + interval '1 second'
    FROM people WHERE email_raw IS NOT NULL AND NOT (kind <> 'invalid' AND k % 7 = 3);
    WITH {people_sql(n)}
    INSERT INTO lead_attributes (lead_id, key, value)
    SELECT {lead_id}, a.key, a.value
    FROM people
    CROSS JOIN LATERAL (VALUES
        ('source', to_jsonb(CASE WHEN kind = 'repeat' THEN 'import-2' ELSE 'crm' END)),
        ('firstName', CASE WHEN k % 10 = 1 THEN to_jsonb(first) END),
        ('currentCompany', CASE WHEN k % 10 = 2 THEN to_jsonb(company) END),
        ('currentRole', CASE WHEN k % 10 = 3 THEN to_jsonb(role) END),
        ('headline', CASE WHEN k % 10 = 4 THEN to_jsonb(headline) END),
        ('email', CASE WHEN kind <> 'invalid' AND k % 7 = 3 THEN to_jsonb(email_raw) END),
        ('score', CASE WHEN k % 9 = 0 THEN to_jsonb(k % 100) END)
    ) AS a(key, value)
    WHERE a.value IS NOT NULL;
    WITH {people_sql(n)}
    INSERT INTO list_memberships (list_id, lead_id, created_at)
    SELECT '{list_id}', {lead_id}, '{t0}'::timestamptz + i * interval '1 microsecond' FROM people;
    COMMIT;
    SELECT (SELECT count(*) FROM lead_socials s JOIN list_memberships m ON m.lead_id = s.lead_id WHERE m.list_id = '{list_id}')
        || ' ' || (SELECT count(*) FROM lead_contacts c JOIN list_memberships m ON m.lead_id = c.lead_id WHERE m.list_id = '{list_id}')
        || ' ' || (SELECT count(*) FROM lead_attributes a JOIN list_memberships m ON m.lead_id = a.lead_id WHERE m.list_id = '{list_id}');
    """
    socials, contacts, attributes = (int(x) for x in db.run(sql).strip().split())
    return {"leads": n, "lead_socials": socials, "lead_contacts": contacts, "lead_attributes": attributes,
            "list_memberships": n}


# --------------------------------------------------------------------------------------------
# The mapping in SQL: the contract's rules, written independently of the service, for (a) and (b).

def email_ok(expr):
    return f"({expr} ~ {EMAIL_RE} AND octet_length({expr}) <= 254)"


def present(expr):
    return f"nullif(btrim({expr}, {WS}), '')"


def mapping_sql(storage, channel, list_id):
    """SELECT of the rows an import inserts (before dedup), in list order. Each level is fenced
    with OFFSET 0 so that the planner does not inline a computed column into both the filter and
    the output: every normalization runs once per member, as in a careful hand-written statement."""
    identity = "v.email" if channel == "email" else "v.linkedin_url"
    if storage == "rows":
        return f"""
        SELECT v.email, v.linkedin_url, v.first_name, v.last_name,
               coalesce(v.full_name, nullif(concat_ws(' ', v.first_name, v.last_name), '')) AS name,
               v.company, v.position, v.headline, NULL::jsonb AS custom_fields
        FROM (
            SELECT CASE WHEN {email_ok('x.e')} THEN x.e END AS email,
                   leadimport_normalize_linkedin(x.linkedin_raw) AS linkedin_url,
                   x.first_name, x.last_name, x.full_name, x.company, x.position, x.headline
            FROM (
                SELECT lower(btrim(r.profile_data->'enrichment'->>'work_email', {WS})) AS e,
                       r.linkedin_url AS linkedin_raw,
                       {present("r.profile_data->>'firstName'")} AS first_name,
                       {present("r.profile_data->>'lastName'")} AS last_name,
                       {present("r.profile_data->>'fullName'")} AS full_name,
                       {present("r.profile_data->>'currentCompany'")} AS company,
                       {present("r.profile_data->>'currentRole'")} AS position,
                       {present("r.profile_data->>'headline'")} AS headline
                FROM list_rows r
                WHERE r.list_id = '{list_id}'
                ORDER BY r.created_at, r.id
                OFFSET 0
            ) x
            OFFSET 0
        ) v
        WHERE {identity} IS NOT NULL
        """
    return f"""
    SELECT v.email, v.linkedin_url, v.first_name, v.last_name,
           coalesce(v.full_name, nullif(concat_ws(' ', v.first_name, v.last_name), '')) AS name,
           v.company, v.position, v.headline, v.custom_fields
    FROM (
        SELECT coalesce(x.work_email, CASE WHEN {email_ok('x.attribute_email')} THEN x.attribute_email END) AS email,
               leadimport_normalize_linkedin(x.linkedin_raw) AS linkedin_url,
               x.first_name, x.last_name, x.full_name, x.company, x.position, x.headline, x.custom_fields
        FROM (
            SELECT wc.e AS work_email,
                   lower(btrim(a.attrs->>'email', {WS})) AS attribute_email,
                   s.url AS linkedin_raw,
                   coalesce({present('l.first_name')}, {present("a.attrs->>'firstName'")}) AS first_name,
                   coalesce({present('l.last_name')}, {present("a.attrs->>'lastName'")}) AS last_name,
                   coalesce({present('l.full_name')}, {present("a.attrs->>'fullName'")}) AS full_name,
                   coalesce({present('l.company')}, {present("a.attrs->>'currentCompany'")}) AS company,
                   coalesce({present('l.title')}, {present("a.attrs->>'currentRole'")}) AS position,
                   coalesce({present('l.headline')}, {present("a.attrs->>'headline'")}) AS headline,
                   coalesce(a.attrs, '{{}}'::jsonb) AS custom_fields
            FROM list_memberships m
            JOIN leads l ON l.id = m.lead_id
            LEFT JOIN lead_socials s ON s.lead_id = m.lead_id AND s.network = 'linkedin'
            LEFT JOIN LATERAL (
                SELECT jsonb_object_agg(la.key, la.value) AS attrs FROM lead_attributes la WHERE la.lead_id = m.lead_id
            ) a ON true
            LEFT JOIN LATERAL (
                SELECT c.e FROM (
                    SELECT lower(btrim(c.value, {WS})) AS e, c.created_at, c.id
                    FROM lead_contacts c WHERE c.lead_id = m.lead_id AND c.kind = 'work_email'
                ) c
                WHERE {email_ok('c.e')}
                ORDER BY c.created_at, c.id LIMIT 1
            ) wc ON true
            WHERE m.list_id = '{list_id}'
            ORDER BY m.created_at, m.lead_id
            OFFSET 0
        ) x
        OFFSET 0
    ) v
    WHERE {identity} IS NOT NULL
    """


INSERT_COLUMNS = ("campaign_id, user_id, status, email, linkedin_url, first_name, last_name, name, "
                  "company, position, headline, source, source_ref, custom_fields")


def insert_sql(campaign, user, list_id, source):
    return f"""
    INSERT INTO campaign_leads ({INSERT_COLUMNS})
    SELECT '{campaign}', '{user}', 'pending', q.email, q.linkedin_url, q.first_name, q.last_name, q.name,
           q.company, q.position, q.headline, 'list', '{list_id}', q.custom_fields
    FROM {source} q
    ON CONFLICT (campaign_id, identity_key) DO NOTHING
    """


def fingerprint_sql(campaign):
    """Order-independent digest of a campaign's leads (everything but ids and timestamps)."""
    return f"""
    SELECT count(*) || ' ' || coalesce(sum(hashtextextended(x, 7)::numeric), 0)
    FROM (
        SELECT (user_id, status, email, linkedin_url, first_name, last_name, name, company, position, headline,
                source, source_ref, custom_fields, identity_key)::text AS x
        FROM campaign_leads WHERE campaign_id = '{campaign}'
    ) s;
    """


# --------------------------------------------------------------------------------------------
# The service's memory: PSS and RSS summed over the supervisor and all its descendants.

def descendants(root):
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
                except OSError:
                    pass
        except OSError:
            pass
    return found


def proc_kib(path, key):
    """A `Key:   N kB` field of a /proc file (meminfo, a process's status), or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def dirty_kib():
    """The kernel's dirty page cache, waiting to be written back (kB)."""
    return proc_kib("/proc/meminfo", "Dirty") or 0


def smaps_rollup(pid):
    values = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    values[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        return None
    return values


def memory_now(root):
    total = {"pss": 0, "rss": 0, "uss": 0, "processes": 0}
    per = {}
    for pid in descendants(root):
        v = smaps_rollup(pid)
        if not v:
            continue
        pss, rss = v.get("Pss", 0), v.get("Rss", 0)
        uss = v.get("Private_Clean", 0) + v.get("Private_Dirty", 0)
        total["pss"] += pss
        total["rss"] += rss
        total["uss"] += uss
        total["processes"] += 1
        per[pid] = {"pss": pss, "rss": rss}
    total["per_process"] = per
    return total


def reset_peak_rss(root):
    """Sets every service process's VmHWM (the kernel's own peak of its RSS) back to its RSS now
    (`clear_refs` 5), so that after an import VmHWM is exactly the highest RSS it reached."""
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def peak_pss_bound(root, idle):
    """The peak PSS from the kernel's peaks rather than from samples: for each process, its PSS
    before the import plus how far its RSS rose above what it was then (what an import allocates is
    private, so it counts whole in PSS as in RSS); a process that was not there before counts its
    whole peak RSS. Summing per-process peaks, which may fall at different moments, can only
    overstate the peak of the sum. Samples miss short peaks: a 10,000-member import lasts 0.2 s."""
    per, total = {}, 0
    for pid in descendants(root):
        hwm = proc_kib(f"/proc/{pid}/status", "VmHWM")
        if hwm is None:
            continue
        before = idle["per_process"].get(pid)
        bound = hwm * 1024 if before is None else before["pss"] + max(0, hwm * 1024 - before["rss"])
        per[str(pid)] = {"peak_rss": hwm * 1024, "bound": bound}
        total += bound
    return total, per


class MemorySampler(threading.Thread):
    """A cross-check of peak_pss_bound, which has each process's peak from the kernel: so a slow
    one. Every 20 ms, reading smaps_rollup of the service's processes cost 9% of a core (0.93 s of
    CPU in 10 s), taken from the import being timed."""

    def __init__(self, root, interval=0.25):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.stop_event = threading.Event()
        self.samples = 0
        self.peak_pss = None   # the sample with the highest summed PSS
        self.peak_rss = 0      # the highest summed RSS seen (possibly another sample)
        self.peak_uss = 0
        self.max_processes = 0

    def run(self):
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            m = memory_now(self.root)
            self.samples += 1
            if self.peak_pss is None or m["pss"] > self.peak_pss["pss"]:
                self.peak_pss = m
            self.peak_rss = max(self.peak_rss, m["rss"])
            self.peak_uss = max(self.peak_uss, m["uss"])
            self.max_processes = max(self.max_processes, m["processes"])
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()
                delay = 0
            self.stop_event.wait(delay)

    def finish(self):
        self.stop_event.set()
        self.join(5)
        return {
            "samples": self.samples,
            "interval_ms": self.interval * 1000,
            "peak_pss_bytes": self.peak_pss["pss"] if self.peak_pss else None,
            "peak_rss_bytes": self.peak_rss,
            "peak_uss_bytes": self.peak_uss,
            "processes": self.max_processes,
            "at_peak_pss_per_process": {str(k): v for k, v in (self.peak_pss or {}).get("per_process", {}).items()},
        }


# --------------------------------------------------------------------------------------------
# HTTP

def http_post(base, path, body, token=None, timeout=1200, headers=None):
    return http_request(base, "POST", path, body, token=token, timeout=timeout, headers=headers)


def http_request(base, method, path, body=None, token=None, timeout=1200, headers=None):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    headers = dict(headers or {})
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# wrk

def parse_duration_ms(text):
    m = re.match(r"^([0-9.]+)(us|ms|s|m)$", text)
    if not m:
        raise BenchError(f"unreadable wrk latency: {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out):
    result = {}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not m:
        raise BenchError(f"wrk printed no Requests/sec:\n{out}")
    result["requests_per_s"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m)", out)
    result["requests"] = int(m.group(1)) if m else None
    result["seconds"] = parse_duration_ms(m.group(2) + m.group(3)) / 1000 if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([0-9.]+(?:us|ms|s|m))\s*$", out, re.M)
        result[f"p{pct}_ms"] = parse_duration_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = ({"connect": int(m.group(1)), "read": int(m.group(2)), "write": int(m.group(3)),
                                "timeout": int(m.group(4))} if m else {"connect": 0, "read": 0, "write": 0, "timeout": 0})
    return result


def status_histogram(access_log, offset):
    """Statuses of the nginx access log lines written after `offset` (default combined format)."""
    hist = {}
    with open(access_log, "rb") as f:
        f.seek(offset)
        for line in f:
            m = re.search(rb'" (\d{3}) ', line)
            if m:
                code = m.group(1).decode()
                hist[code] = hist.get(code, 0) + 1
    return hist


def quiesce(access_log, quiet_for=0.5, limit=15.0):
    """Waits until nginx's access log stops growing: requests still in flight when wrk stopped
    are logged late (as 499 when nginx noticed the client had gone, else with their status)."""
    deadline = time.monotonic() + limit
    size = os.path.getsize(access_log)
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = os.path.getsize(access_log)
        if now != size:
            size, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_for:
            break
    return size


def flush_dirty_pages():
    """Writes back what the steps before left dirty in the page cache, and returns how much it
    was (kB). The cluster runs with fsync off, so a checkpoint leaves the imports' data there; the
    wrk runs add nginx's access log and the service's log (300-400 MB after the two 401 runs).
    The kernel writes an inode's dirty pages back once the first of them is 30 s old, which
    after the 401 runs fell in the first seconds of the 422 run; on this VM that writeback held
    a few requests for 0.2-1.5 s (statements on no wait event while Dirty fell by 300 MB), which
    set the 422's p99 of those runs. Flushed before each step, a wrk run writes back only its own
    10 s of logs, after it ends. (Stalls of another cause remain: see docs/performance.md.)"""
    dirty = dirty_kib()
    os.sync()
    return dirty


def run_wrk(url, script, duration, connections, threads, access_log, label):
    offset = quiesce(access_log)
    flushed = flush_dirty_pages()
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "--latency", "-s", script, url]
    log(f"wrk {label}: {' '.join(args[:-1])} URL")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed: {proc.stderr}\n{proc.stdout}")
    result = parse_wrk(proc.stdout)
    quiesce(access_log)
    # Every request of this run as nginx logged it, stragglers included.
    result["statuses"] = status_histogram(access_log, offset)
    result["dirty_kib_flushed_before"] = flushed
    result["raw"] = proc.stdout
    return result


def closed_loop(url, body, token, connections, duration):
    """An uncorrected latency cross-check: `connections` threads, each on one kept-alive
    connection, send the request again as soon as the answer is in, and every latency is recorded
    as measured. wrk's percentiles include its coordinated-omission correction (for each latency
    of at least twice the mean interval per connection it adds synthetic samples below it), so a
    few stalls of seconds can move its p90 and p99 far above what any request saw; this shows what
    requests saw. Its rate is limited by Python (it is not a rate figure)."""
    u = urllib.parse.urlparse(url)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    stop_at = time.monotonic() + duration
    lock = threading.Lock()
    latencies, statuses, errors = [], {}, [0]

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        mine, codes = [], {}
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("POST", u.path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                code = str(resp.status)
                mine.append(time.perf_counter() - started)
                codes[code] = codes.get(code, 0) + 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for k, v in codes.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 60)
    elapsed = time.monotonic() - started
    latencies.sort()
    n = len(latencies)
    if not n:
        raise BenchError("the closed-loop cross-check completed no request")

    def pct(p):
        return round(latencies[min(n - 1, int(n * p / 100))] * 1000, 3)

    return {"connections": connections, "duration_s": duration, "requests": n, "requests_per_s": round(n / elapsed),
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "p999_ms": pct(99.9),
            "max_ms": round(latencies[-1] * 1000, 3), "mean_ms": round(sum(latencies) / n * 1000, 3),
            "over_100ms": sum(1 for x in latencies if x > 0.1), "over_1s": sum(1 for x in latencies if x > 1.0),
            "statuses": statuses, "errors": errors[0]}


# --------------------------------------------------------------------------------------------

def best_of_rounds(rounds):
    """Rounds of (synchronous import, job) of one list, combined as wrk's rounds are: the best
    time of each side, on a machine whose other work slows either at random. Every round is kept
    in "rounds"; the checks hold only if they hold in every round; the memory is the round's
    with the highest peak."""
    best_job = min(rounds, key=lambda e: e["job"]["seconds"])
    best_sync = min(rounds, key=lambda e: e["sync"]["seconds"])
    entry = dict(best_job)
    entry["sync"] = best_sync["sync"]
    entry["ratio_job_to_sync"] = round(best_job["job"]["seconds"] / best_sync["sync"]["seconds"], 3)
    entry["ratio_job_to_sync_client"] = round(best_job["job"]["seconds_client"] / best_sync["sync"]["seconds"], 3)
    entry["same_counts"] = all(e["same_counts"] for e in rounds)
    entry["same_rows"] = all(e["same_rows"] for e in rounds)
    entry["rejections_complete"] = all(e["rejections_complete"] for e in rounds)
    entry["job"] = dict(best_job["job"])
    entry["job"]["memory"] = max(rounds, key=lambda e: e["job"]["memory"]["peak_pss_bytes"] or 0)["job"]["memory"]
    entry["rounds"] = [{"order": e["order"], "sync_s": e["sync"]["seconds"], "job_s": e["job"]["seconds"], "ratio": e["ratio_job_to_sync"],
                        "job": e["job"], "sync": e["sync"]} for e in rounds]
    return entry


def machine_facts(args, admin):
    facts = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    url = args.service_database_url
    facts["service_database_transport"] = ("Unix socket" if "host=/" in url or "@/" in url
                                           else "TCP" if url else "unknown")
    total = proc_kib("/proc/meminfo", "MemTotal")
    if total is not None:
        facts["memory_total_mib"] = round(total / 1024)
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
    facts["postgresql"] = admin.value("SELECT version();")
    facts["postgresql_settings"] = dict(
        line.split("|", 1) for line in admin.run(
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers','fsync','synchronous_commit',"
            "'full_page_writes','max_connections','work_mem','max_wal_size') ORDER BY name;").strip().splitlines())
    ngx = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    facts["nginx"] = (ngx.stderr or ngx.stdout).strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    facts["wrk"] = (wrk.stdout or wrk.stderr).strip().splitlines()[0] if (wrk.stdout or wrk.stderr) else None
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True)
    facts["git_commit"] = git.stdout.strip()
    dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "Sources", "Package.swift", "nginx"],
                           capture_output=True, text=True)
    facts["git_dirty_files"] = [l[3:] for l in dirty.stdout.splitlines()]
    with open("/proc/loadavg") as f:
        facts["loadavg_at_start"] = f.read().split()[:3]
    facts["kernel"] = platform.release()
    if args.binary and os.path.exists(args.binary):
        h = hashlib.sha256()
        with open(args.binary, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        facts["service_binary"] = {"path": args.binary_source or args.binary, "sha256": h.hexdigest(),
                                   "built_at": datetime.datetime.fromtimestamp(os.path.getmtime(args.binary)).isoformat(timespec="seconds")}
    return facts


def cpu_seconds():
    """CPU time so far: the machine's busy and stolen seconds (/proc/stat), and the user plus
    system seconds of every PostgreSQL, nginx and leadimport process alive now, with those of
    its children that ended (a backend that closes mid-step moves its seconds to the postmaster's
    children's time; counting only its own, the step lost them: -110.97 s once)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    out = {"machine_busy": busy / tick, "machine_steal": fields[7] / tick, "postgres": 0.0, "service": 0.0, "nginx": 0.0}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        # utime, stime, cutime, cstime
        used = (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])) / tick
        if name in ("postgres", "nginx"):
            out[name] += used
        elif name in ("leadimport", "exe"):
            # The worker processes run /proc/self/exe: their command line says what they are.
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    command = f.read().split(b"\0")[0]
            except OSError:
                continue
            if command.endswith(b"leadimport"):
                out["service"] += used
    return out


def cpu_used(before, after, wall):
    """What a step used of the machine's CPU (`cpu_seconds` before and after, `wall` seconds)."""
    used = {k: round(after[k] - before[k], 2) for k in before}
    used["machine_busy_share"] = round(used["machine_busy"] / (wall * (os.cpu_count() or 1)), 3) if wall > 0 else None
    return used


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class Bench:
    def __init__(self, args):
        self.args = args
        self.admin = Psql(args.admin_url)
        self.owner = Psql(args.owner_url)
        self.problems = []
        self.results = {"imports": [], "jobs": [], "selection": [], "generation": [], "request_rate": {}, "memory": {}, "targets": []}

    def problem(self, message):
        log("PROBLEM: " + message)
        self.problems.append(message)

    # ---- setup

    def create_user_and_token(self):
        self.user = str(uuid.uuid4())
        self.token = "bench_" + secrets.token_urlsafe(32)
        self.admin.run(f"""
            INSERT INTO users (id, email) VALUES ('{self.user}', 'bench-{self.user[:8]}@example.com');
            INSERT INTO tokens (user_id, token_hash, name)
            VALUES ('{self.user}', sha256(convert_to('{self.token}', 'UTF8')), 'bench');
        """)
        # PostgreSQL's contrib module, for warm_list; the service never sees it.
        self.admin.run("CREATE EXTENSION IF NOT EXISTS pg_prewarm;")

    def new_campaign(self, channel, name):
        return self.admin.value(
            f"INSERT INTO campaigns (user_id, name, channel) VALUES ('{self.user}', '{name}', '{channel}') RETURNING id;")

    # What each storage's list is read from, indexes included (the endpoint probes them).
    LIST_TABLES = {"rows": ("list_rows",),
                   "leads": ("list_memberships", "leads", "lead_socials", "lead_contacts", "lead_attributes")}

    def warm_list(self, storage):
        """Reads the list's tables and their indexes into the kernel's page cache (untimed), so
        that the endpoint reads its input from memory as (a) reads its temp table from memory. Left
        alone, the endpoint was the first to read a storage's tables since they were generated
        minutes before, and on this VM (DAMON pages cold page cache out) that meant reading them
        from disk; (a)'s untimed setup then warmed them for (b) and for the next channel."""
        rels = ", ".join(
            f"('{t}'::regclass)" for t in self.LIST_TABLES[storage])
        started = time.perf_counter()
        blocks = self.admin.value(f"""
            SELECT sum(pg_prewarm(r, 'read')) FROM (
                SELECT t.r FROM (VALUES {rels}) AS t(r)
                UNION ALL
                SELECT i.indexrelid::regclass FROM (VALUES {rels}) AS t(r) JOIN pg_index i ON i.indrelid = t.r
            ) AS all_rels(r);""")
        return {"blocks": int(blocks), "seconds": round(time.perf_counter() - started, 2)}

    def fresh_start(self):
        """Every timed step starts from the same state: no campaign leads, nothing dirty, in
        PostgreSQL's buffers or in the kernel's page cache (fsync is off: without the sync, the
        step before's writes are written back by the kernel during this one)."""
        self.admin.run("TRUNCATE campaign_leads; CHECKPOINT;")
        flush_dirty_pages()

    def check_401_parity(self):
        path = IMPORT_PATH.format(campaign="00000000-0000-0000-0000-000000000000")
        body = json.dumps({"listId": "00000000-0000-0000-0000-000000000000"})
        s = http_post(self.args.base_url, path, body)
        c = http_post(self.args.ceiling_url, path, body)
        keys = ("content-type", "content-length", "www-authenticate")
        parity = {
            "service": {"status": s[0], **{k: s[1].get(k) for k in keys}, "body": s[2].decode()},
            "ceiling": {"status": c[0], **{k: c[1].get(k) for k in keys}, "body": c[2].decode()},
        }
        self.results["response_401"] = parity
        if s[0] != 401:
            raise BenchError(f"the service answered {s[0]} to a request without a token: {s[2][:200]!r}")
        if (s[0], [s[1].get(k) for k in keys], s[2]) != (c[0], [c[1].get(k) for k in keys], c[2]):
            raise BenchError(f"the ceiling's 401 differs from the service's: {json.dumps(parity, indent=1)}")
        log(f"401 parity: service and ceiling both answer 401, WWW-Authenticate: {s[1].get('www-authenticate')}")

    # ---- imports

    def generate(self, size):
        lists = {}
        for storage in ("rows", "leads"):
            list_id = str(uuid.uuid4())
            t0 = "2026-01-01 00:00:00+00"
            started = time.perf_counter()
            if storage == "rows":
                rows = generate_rows_list(self.admin, self.user, list_id, size, t0)
            else:
                rows = generate_leads_list(self.admin, self.user, list_id, size, t0)
            seconds = time.perf_counter() - started
            total_rows = sum(rows.values())
            log(f"generated {storage} list of {size:,} members: {total_rows:,} rows in {seconds:.1f} s")
            self.results["generation"].append({"size": size, "storage": storage, "list_id": list_id,
                                               "seconds": round(seconds, 3), "rows": rows, "total_rows": total_rows})
            lists[storage] = list_id
        started = time.perf_counter()
        self.admin.run("VACUUM (ANALYZE) list_rows, leads, lead_socials, lead_contacts, lead_attributes, "
                       "list_memberships, lists, campaigns, tokens, users;")
        log(f"VACUUM ANALYZE after generation: {time.perf_counter() - started:.1f} s")
        return lists

    def with_memory(self, action, label=None):
        """Runs `action` while the service's memory is sampled, with every process's peak RSS
        reset before; returns what `action` returned and the memory figures (see endpoint_import).
        With BENCH_PERF=1, `perf record -a -g` samples the whole machine meanwhile (the service's
        threads, PostgreSQL's backends, nginx), into bench/out/perf-LABEL.data (`perf report -i
        FILE --sort comm,dso`): where a step's CPU goes. (`-p` would miss the threads an import
        starts.)"""
        reset_peak_rss(self.args.service_pid)
        idle = memory_now(self.args.service_pid)
        sampler = MemorySampler(self.args.service_pid)
        sampler.start()
        recorder = None
        if label and os.environ.get("BENCH_PERF") == "1":
            name = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")
            recorder = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-a", "-o",
                                         os.path.join(self.args.out_dir, f"perf-{name}.data")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = self.step_probe()
        try:
            result = action()
        finally:
            mem = sampler.finish()
            if recorder:
                recorder.send_signal(2)
                recorder.wait()
        mem.update(probe(label))
        mem["idle_before_pss_bytes"] = idle["pss"]
        mem["idle_before_rss_bytes"] = idle["rss"]
        bound, per = peak_pss_bound(self.args.service_pid, idle)
        mem["sampled_peak_pss_bytes"] = mem["peak_pss_bytes"]
        mem["peak_pss_from_peak_rss_bytes"] = bound
        mem["peak_rss_per_process"] = per
        # The figure the targets read: the higher of the two estimates of the peak.
        mem["peak_pss_bytes"] = max(bound, mem["sampled_peak_pss_bytes"] or 0)
        mem["sampled_peak_rss_bytes"] = mem["peak_rss_bytes"]
        mem["peak_rss_bytes"] = max(mem["peak_rss_bytes"], sum(v["peak_rss"] for v in per.values()))
        return result, mem

    def step_probe(self):
        """Starts counting a step's CPU (and, with BENCH_STATEMENTS=1, its statements); the
        function returned ends the step and gives {"cpu": ..., "statements": ...}, logged under
        `label` when there is one."""
        statements = os.environ.get("BENCH_STATEMENTS") == "1"
        if statements:
            self.admin.run("SELECT pg_stat_statements_reset();")
        cpu_before, started = cpu_seconds(), time.perf_counter()

        def end(label=None):
            # Backends that ended during the step are not in the per-process sums (the pool's are kept).
            out = {"cpu": cpu_used(cpu_before, cpu_seconds(), time.perf_counter() - started)}
            if statements:
                out["statements"] = self.top_statements()
                if label:
                    log(f"{label}: statements by total time (ms): " + "; ".join(
                        f"{s['total_ms']:.0f} = {s['calls']} x {s['mean_ms']:.3f} {s['query'][:60]!r}" for s in out["statements"][:6]))
            return out
        return end

    def top_statements(self, count=12):
        """With BENCH_STATEMENTS=1: the statements of the step (pg_stat_statements, reset before
        it) by total execution time, the bench's own left out."""
        rows = self.admin.run(
            "SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), "
            "regexp_replace(left(query, 200), '\\s+', ' ', 'g') FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
            f"WHERE r.rolname = 'leadimport_service' ORDER BY total_exec_time DESC LIMIT {count};")
        out = []
        for line in rows.strip().splitlines():
            calls, total, mean, query = line.split("|", 3)
            out.append({"calls": int(calls), "total_ms": float(total), "mean_ms": float(mean), "query": query})
        return out

    def endpoint_import(self, campaign, list_id, label=None):
        path = IMPORT_PATH.format(campaign=campaign)
        body = json.dumps({"listId": list_id})

        def post():
            started = time.perf_counter()
            answer = http_post(self.args.base_url, path, body, token=self.token)
            return answer, time.perf_counter() - started

        ((status, headers, data), seconds), mem = self.with_memory(post, label=label)
        try:
            counts = json.loads(data)
        except ValueError:
            counts = {"unparsable_body": data[:300].decode(errors="replace")}
        return status, counts, seconds, mem

    def measure(self, size, storage, channel, list_id):
        label = f"{size:,} {storage}/{channel}"
        expected = expected_counts(size)
        entry = {"size": size, "storage": storage, "channel": channel, "list_id": list_id, "expected": expected}
        fingerprints = {}

        # The endpoint, through nginx.
        entry["list_warmed"] = self.warm_list(storage)
        self.fresh_start()
        campaign = self.new_campaign(channel, f"bench {label} endpoint")
        status, counts, seconds, mem = self.endpoint_import(campaign, list_id)
        entry["endpoint"] = {"status": status, "counts": counts, "seconds": round(seconds, 4),
                             "rows_per_s": round(size / seconds), "memory": mem}
        log(f"{label}: endpoint {status} in {seconds:.2f} s ({size / seconds:,.0f} rows/s) {counts}; "
            f"peak PSS {mem['peak_pss_bytes'] / MiB:.1f} MiB, RSS {mem['peak_rss_bytes'] / MiB:.1f} MiB "
            f"(sampled peak PSS {mem['sampled_peak_pss_bytes'] / MiB:.1f} MiB in {mem['samples']} samples)")
        if status != 200:
            self.problem(f"{label}: the endpoint answered {status}, not 200: {counts}")
        keys = ("imported", "duplicates", "invalid", "errors", "total")
        if all(isinstance(counts.get(k), int) for k in keys):
            if sum(counts[k] for k in keys[:4]) != counts["total"]:
                self.problem(f"{label}: the endpoint's counts do not add up (I+D+V+E != T): {counts}")
            if {k: counts[k] for k in keys} != expected:
                self.problem(f"{label}: the endpoint's counts {counts} differ from the generator's {expected}")
        else:
            self.problem(f"{label}: the endpoint's body carries no counts: {counts}")
        in_db = self.admin.value(f"SELECT count(*) || ' ' || (SELECT stats::text FROM campaigns WHERE id = '{campaign}') "
                                 f"FROM campaign_leads WHERE campaign_id = '{campaign}';")
        n_db, stats = in_db.split(" ", 1)
        entry["endpoint"]["rows_in_campaign"] = int(n_db)
        entry["endpoint"]["campaign_stats"] = json.loads(stats)
        if int(n_db) != counts.get("imported"):
            self.problem(f"{label}: the campaign holds {n_db} leads, the endpoint reported {counts.get('imported')} imported")
        if json.loads(stats).get("total") != int(n_db):
            self.problem(f"{label}: the campaign's stats {stats} do not match its {n_db} leads")
        fingerprints["endpoint"] = self.admin.value(fingerprint_sql(campaign))

        # (a) The write cost: the same rows, already mapped, from a temporary table, one statement.
        self.fresh_start()
        campaign_a = self.new_campaign(channel, f"bench {label} write cost")
        setup = f"""
            SET temp_buffers = '2GB';
            SET work_mem = '256MB';
            CREATE TEMP TABLE a_rows AS {mapping_sql(storage, channel, list_id)};
            ANALYZE a_rows;
            SELECT count(*) FROM a_rows;
        """
        ms, tag, _ = self.owner.timed(setup, insert_sql(campaign_a, self.user, list_id, "a_rows"))
        inserted_a = int(tag.split()[-1])
        entry["write_cost_a"] = {"seconds": round(ms / 1000, 4), "rows_per_s": round(size / (ms / 1000)),
                                 "inserted": inserted_a}
        fingerprints["write_cost_a"] = self.admin.value(fingerprint_sql(campaign_a))

        # (b) One statement that maps and inserts, from the list's own tables.
        self.fresh_start()
        campaign_b = self.new_campaign(channel, f"bench {label} one statement")
        ms_b, tag_b, _ = self.owner.timed("SET work_mem = '256MB';",
                                          insert_sql(campaign_b, self.user, list_id, f"({mapping_sql(storage, channel, list_id)})"))
        inserted_b = int(tag_b.split()[-1])
        entry["one_statement_b"] = {"seconds": round(ms_b / 1000, 4), "rows_per_s": round(size / (ms_b / 1000)),
                                    "inserted": inserted_b}
        fingerprints["one_statement_b"] = self.admin.value(fingerprint_sql(campaign_b))

        entry["ratio_endpoint_to_a"] = round(seconds / (ms / 1000), 3)
        entry["ratio_endpoint_to_b"] = round(seconds / (ms_b / 1000), 3)
        entry["fingerprints"] = fingerprints
        entry["same_rows"] = len(set(fingerprints.values())) == 1
        imported = counts.get("imported")
        if inserted_a != imported or inserted_b != imported:
            self.problem(f"{label}: inserted counts differ: endpoint {imported}, (a) {inserted_a}, (b) {inserted_b}")
        if not entry["same_rows"]:
            self.problem(f"{label}: the endpoint's leads differ in content from the SQL mapping's "
                         f"(count + digest: {fingerprints})")
        log(f"{label}: (a) write cost {ms / 1000:.2f} s ({size / (ms / 1000):,.0f} rows/s), "
            f"(b) one statement {ms_b / 1000:.2f} s ({size / (ms_b / 1000):,.0f} rows/s); "
            f"endpoint/(a) {entry['ratio_endpoint_to_a']:.2f}, endpoint/(b) {entry['ratio_endpoint_to_b']:.2f}; "
            f"same rows: {entry['same_rows']}")
        self.admin.run("TRUNCATE campaign_leads;")
        return entry

    # ---- import jobs

    def run_job(self, campaign, list_id, label):
        """POSTs the import with `Prefer: respond-async`, then polls `GET /api/imports/{id}` every
        JOB_POLL_S until the job is final. Returns the 202's facts, the final job, the client's
        seconds from the POST to the poll that saw it final, and the number of polls."""
        a = self.args
        path = IMPORT_PATH.format(campaign=campaign)
        body = json.dumps({"listId": list_id})
        started = time.perf_counter()
        status, headers, data = http_post(a.base_url, path, body, token=self.token, headers={"Prefer": "respond-async"})
        answered = time.perf_counter() - started
        if status != 202:
            raise BenchError(f"{label}: the asynchronous import answered {status}, not 202: {data[:300]!r}")
        job = json.loads(data)
        location = headers.get("location")
        accepted = {"status": status, "seconds": round(answered, 4), "location": location,
                    "preference_applied": headers.get("preference-applied"), "state": job.get("state")}
        if location != f"/api/imports/{job.get('id')}":
            raise BenchError(f"{label}: the 202's Location {location!r} does not name the job {job.get('id')!r}")
        if headers.get("preference-applied") != "respond-async":
            self.problem(f"{label}: the 202 has Preference-Applied {headers.get('preference-applied')!r}")
        polls, last_total = 0, -1
        progress_at = last_log = next_poll = started
        while job.get("state") not in ("finished", "cancelled"):
            next_poll += JOB_POLL_S
            delay = next_poll - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_poll = time.perf_counter()
            status, _, data = http_request(a.base_url, "GET", location, token=self.token, timeout=60)
            polls += 1
            if status != 200:
                raise BenchError(f"{label}: GET {location} answered {status}: {data[:300]!r}")
            job = json.loads(data)
            now = time.perf_counter()
            total = job["counts"]["total"]
            if total != last_total:
                last_total, progress_at = total, now
            elif now - progress_at > JOB_STALL_S:
                raise BenchError(f"{label}: the job has not moved for {JOB_STALL_S:.0f} s: {job}")
            if now - last_log >= 10:
                log(f"{label}: {job['state']}, {total:,} members handled after {now - started:.0f} s")
                last_log = now
        return accepted, job, time.perf_counter() - started, polls

    def job_rejections(self, job_id, label):
        """The job's rejections report, paged through `GET /api/imports/{id}/rejections` with
        limit=1000 to its end: items by reason, each position after the one before."""
        a = self.args
        by_reason, items, pages, last_position, malformed = {}, 0, 0, 0, 0
        out_of_order = []
        after = None
        started = time.perf_counter()
        while True:
            query = "limit=1000" + (f"&after={urllib.parse.quote(after, safe='')}" if after else "")
            status, _, data = http_request(a.base_url, "GET", f"/api/imports/{job_id}/rejections?{query}", token=self.token, timeout=60)
            pages += 1
            if status != 200:
                raise BenchError(f"{label}: the rejections page {pages} answered {status}: {data[:300]!r}")
            page = json.loads(data)
            for item in page["items"]:
                if item["position"] <= last_position and len(out_of_order) < 10:
                    out_of_order.append([last_position, item["position"]])
                last_position = item["position"]
                by_reason[item["reason"]] = by_reason.get(item["reason"], 0) + 1
                if not re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", str(item.get("memberId", "")), re.I) \
                        or not item.get("detail"):
                    malformed += 1
            items += len(page["items"])
            after = page["next"]
            if after is None:
                break
            if not page["items"]:
                raise BenchError(f"{label}: a final job's rejections page {pages} is empty but has a next cursor")
        in_db = dict(line.split("|") for line in self.admin.run(
            f"SELECT reason, count(*) FROM import_rejections WHERE job_id = '{job_id}' GROUP BY reason;").strip().splitlines() if line)
        return {"items": items, "by_reason": by_reason, "pages": pages, "seconds": round(time.perf_counter() - started, 2),
                "out_of_order": out_of_order, "malformed_items": malformed,
                "in_database_by_reason": {k: int(v) for k, v in in_db.items()}}

    def measure_job(self, size, storage, list_id, channel="email", round_number=1):
        # One round: the synchronous import and the job; best_of_rounds combines the rounds.
        """A job beside the synchronous import of the same list, each into a fresh draft campaign
        from the same state (list warmed, no campaign leads, nothing dirty)."""
        label = f"{size:,} {storage}/{channel}"
        expected = expected_counts(size)
        keys = ("imported", "duplicates", "invalid", "errors", "total")
        entry = {"size": size, "storage": storage, "channel": channel, "list_id": list_id, "expected": expected}

        def sync_side():
            entry["list_warmed_sync"] = self.warm_list(storage)
            self.fresh_start()
            campaign_s = self.new_campaign(channel, f"bench {label} sync beside a job")
            status, counts, seconds, mem = self.endpoint_import(campaign_s, list_id, label=f"{label} sync")
            entry["sync"] = {"campaign": campaign_s, "status": status, "counts": counts, "seconds": round(seconds, 4),
                             "rows_per_s": round(size / seconds), "memory": mem}
            if status != 200:
                self.problem(f"{label}: the synchronous import beside the job answered {status}: {counts}")
            if {k: counts.get(k) for k in keys} != expected:
                self.problem(f"{label}: the synchronous import's counts {counts} differ from the generator's {expected}")
            sync_fingerprint = self.admin.value(fingerprint_sql(campaign_s))
            log(f"{label}: synchronous import {status} in {seconds:.2f} s")
            return status, counts, seconds, mem, sync_fingerprint

        def job_side():
            entry["list_warmed_job"] = self.warm_list(storage)
            self.fresh_start()
            campaign_j = self.new_campaign(channel, f"bench {label} job")
            (accepted, job, seen, polls), jmem = self.with_memory(lambda: self.run_job(campaign_j, list_id, label), label=f"{label} job")
            # The runner recomputes the campaign's stats after it marks the job finished.
            stats_wait_started = time.perf_counter()
            stats = None
            while time.perf_counter() - stats_wait_started < 60:
                stats = json.loads(self.admin.value(f"SELECT coalesce(stats, '{{}}')::text FROM campaigns WHERE id = '{campaign_j}';"))
                if stats.get("total") == job["counts"].get("imported"):
                    break
                time.sleep(0.05)
            stats_after_seen = time.perf_counter() - stats_wait_started
            row = self.admin.value(
                "SELECT extract(epoch FROM finished_at - created_at) || ' ' || extract(epoch FROM started_at - created_at) || ' ' "
                "|| extract(epoch FROM finished_at - started_at) || ' ' || attempts || ' ' || resume_position "
                f"FROM import_jobs WHERE id = '{job['id']}';").split()
            job_seconds, queued, running, attempts, position = float(row[0]), float(row[1]), float(row[2]), int(row[3]), int(row[4])
            n_db = int(self.admin.value(f"SELECT count(*) FROM campaign_leads WHERE campaign_id = '{campaign_j}';"))
            job_fingerprint = self.admin.value(fingerprint_sql(campaign_j))
            rejections = self.job_rejections(job["id"], label)
            entry["job"] = {"id": job["id"], "campaign": campaign_j, "accepted": accepted, "state": job["state"],
                            "http_status": job.get("httpStatus"), "partial": job.get("partial"), "counts": job["counts"],
                            "seconds": round(job_seconds, 4), "queued_s": round(queued, 4), "running_s": round(running, 4),
                            "seconds_client": round(seen, 4), "polls": polls, "poll_interval_s": JOB_POLL_S,
                            "stats_recomputed_after_seen_s": round(stats_after_seen, 3), "campaign_stats": stats,
                            "attempts": attempts, "resume_position": position, "rows_in_campaign": n_db,
                            "rows_per_s": round(size / job_seconds), "memory": jmem, "rejections": rejections}
            return job, jmem, seen, job_seconds, queued, job_fingerprint, rejections, attempts, position, n_db, stats, stats_after_seen

        # Round `round_number` odd: the synchronous import first; even: the job first. On this
        # shared machine the second of two long steps is often the slower (docs/performance.md):
        # alternating gives each side the first place in half the rounds.
        order = ("sync", "job") if round_number % 2 == 1 else ("job", "sync")
        sides = {"sync": sync_side, "job": job_side}
        done = {name: sides[name]() for name in order}
        entry["order"] = ", ".join(order)
        status, counts, seconds, mem, sync_fingerprint = done["sync"]
        (job, jmem, seen, job_seconds, queued, job_fingerprint, rejections, attempts, position, n_db, stats,
         stats_after_seen) = done["job"]

        entry["ratio_job_to_sync"] = round(job_seconds / seconds, 3)
        entry["ratio_job_to_sync_client"] = round(seen / seconds, 3)
        entry["same_counts"] = {k: job["counts"].get(k) for k in keys} == {k: counts.get(k) for k in keys}
        entry["same_rows"] = job_fingerprint == sync_fingerprint
        reasons = {"duplicate": job["counts"].get("duplicates"), "invalid": job["counts"].get("invalid"),
                   "error": job["counts"].get("errors")}
        entry["rejections_complete"] = (
            all(rejections["by_reason"].get(k, 0) == v for k, v in reasons.items())
            and all(rejections["in_database_by_reason"].get(k, 0) == v for k, v in reasons.items())
            and rejections["items"] == sum(reasons.values()) and not rejections["out_of_order"] and not rejections["malformed_items"])

        if job["state"] != "finished" or job.get("httpStatus") != 200 or job.get("partial") is not False:
            self.problem(f"{label}: the job ended {job['state']} with httpStatus {job.get('httpStatus')}, partial {job.get('partial')}")
        if not entry["same_counts"]:
            self.problem(f"{label}: the job's counts {job['counts']} differ from the synchronous import's {counts}")
        if attempts != 1 or position != job["counts"].get("total"):
            self.problem(f"{label}: the job took {attempts} claims and stands at position {position} of {job['counts'].get('total')}")
        if n_db != job["counts"].get("imported") or (stats or {}).get("total") != n_db:
            self.problem(f"{label}: the job's campaign holds {n_db} leads, stats {stats}, the job counted {job['counts'].get('imported')}")
        if not entry["same_rows"]:
            self.problem(f"{label}: the job's leads differ from the synchronous import's ({job_fingerprint} / {sync_fingerprint})")
        if not entry["rejections_complete"]:
            self.problem(f"{label}: the job's rejections report does not match its counts {reasons}: {rejections}")
        log(f"{label}: job {job['state']} {job.get('httpStatus')} in {job_seconds:.2f} s (created -> finished; queued {queued:.2f} s), "
            f"seen finished by the client after {seen:.2f} s, stats {stats_after_seen:.2f} s later; synchronous {seconds:.2f} s; "
            f"job / sync {entry['ratio_job_to_sync']:.3f}; counts {job['counts']}; same counts {entry['same_counts']}, "
            f"same rows {entry['same_rows']}; rejections {rejections['by_reason']} in {rejections['pages']} pages "
            f"({rejections['seconds']:.1f} s); peak PSS {jmem['peak_pss_bytes'] / MiB:.1f} MiB; "
            f"CPU s sync {mem['cpu']}, job {jmem['cpu']}")
        self.admin.run("TRUNCATE campaign_leads;")
        return entry

    # ---- filters and dry runs (section 4)

    def timed_import(self, campaign, body):
        path = IMPORT_PATH.format(campaign=campaign)
        started = time.perf_counter()
        status, _, data = http_post(self.args.base_url, path, json.dumps(body), token=self.token)
        seconds = time.perf_counter() - started
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {"unparsable_body": data[:300].decode(errors="replace")}
        return status, answer, seconds

    def best_import(self, channel, body, label, rounds=SELECTION_ROUNDS, memory=False):
        """The best of `rounds` imports of `body`, each into a fresh campaign from the same state;
        with `memory`, the service's memory sampled during each (the highest peak is kept)."""
        runs = []
        for _ in range(rounds):
            self.fresh_start()
            campaign = self.new_campaign(channel, f"bench {label}")
            if memory:
                (status, answer, seconds), mem = self.with_memory(lambda: self.timed_import(campaign, body))
            else:
                (status, answer, seconds), mem = self.timed_import(campaign, body), None
            runs.append({"status": status, "answer": answer, "seconds": round(seconds, 4), "campaign": campaign, "memory": mem})
        best = min(runs, key=lambda r: r["seconds"])
        result = {**best, "rounds": [r["seconds"] for r in runs]}
        if memory:
            result["memory"] = max((r["memory"] for r in runs), key=lambda m: m["peak_pss_bytes"] or 0)
        return result

    def measure_selection(self, size, storage, list_id, channel="email"):
        """Section 4's figures on one big list: a limit and leadIds against importing a list of
        that many members; an orderBy with a limit against one read of the list (a where that
        selects nobody) plus that import; a dry run against the real import."""
        label = f"{size:,} {storage}/{channel}"
        entry = {"size": size, "storage": storage, "channel": channel, "list_id": list_id}
        # Not in the wake of the jobs part's million-row imports: autovacuum works through them for minutes.
        self.settle(key=f"selection_settle_{storage}_{size}", before=f"the selections of {label}")
        small = {}
        for n in (2500, 1000):
            small_list = str(uuid.uuid4())
            (generate_rows_list if storage == "rows" else generate_leads_list)(self.admin, self.user, small_list, n, "2026-02-01 00:00:00+00")
            small[n] = small_list
        self.admin.run("ANALYZE list_rows, list_memberships, leads;")
        entry["list_warmed"] = self.warm_list(storage)
        ids_sql = ("SELECT id FROM list_rows WHERE list_id = '{l}' ORDER BY created_at, id" if storage == "rows"
                   else "SELECT lead_id FROM list_memberships WHERE list_id = '{l}' ORDER BY created_at, lead_id")
        # 1,000 members spread over the whole list: every (size / 1000)th.
        ids = [line for line in self.admin.run(
            f"SELECT x FROM (SELECT x, row_number() OVER () AS n FROM ({ids_sql.format(l=list_id)}) AS t(x)) AS m "
            f"WHERE n % {max(1, size // 1000)} = 1 LIMIT 1000;").split()]
        nobody = {"where": [{"field": "company", "value": "no company has this name"}]}
        plan = [
            ("list_2500", {"listId": small[2500]}),
            ("limit_2500", {"listId": list_id, "filter": {"limit": 2500}}),
            ("list_1000", {"listId": small[1000]}),
            ("lead_ids_1000", {"listId": list_id, "filter": {"leadIds": ids}}),
        ]
        for name, body in plan:
            entry[name] = self.best_import(channel, body, f"{label} {name}")
            log(f"{label}: {name} {entry[name]['status']} in {entry[name]['seconds']:.3f} s (rounds {entry[name]['rounds']}) "
                f"{ {k: entry[name]['answer'].get(k) for k in ('imported', 'duplicates', 'invalid', 'total')} }")
        for name, body in [("read_once", {"listId": list_id, "filter": nobody}),
                           ("ordered_limit_2500", {"listId": list_id, "filter": {"orderBy": [{"field": "lastName"}, {"field": "company", "direction": "desc"}],
                                                                                "limit": 2500}}),
                           ("dry_run", {"listId": list_id, "dryRun": True}),
                           ("real", {"listId": list_id})]:
            # One read of the list and the ordered selection vary as much as the imports: best of 3.
            # The dry run and the import, best of 2 each, as a job and its synchronous import are:
            # one round a side left their ratio to whichever of them the machine slowed.
            entry[name] = self.best_import(channel, body, f"{label} {name}", rounds=3 if name in ("read_once", "ordered_limit_2500") else 2,
                                           memory=True)
            log(f"{label}: {name} {entry[name]['status']} in {entry[name]['seconds']:.2f} s "
                f"{ {k: entry[name]['answer'].get(k) for k in ('imported', 'duplicates', 'invalid', 'total', 'dryRun')} }")
        keys = ("imported", "duplicates", "invalid", "errors", "total")
        entry["dry_run_same_counts"] = all(entry["dry_run"]["answer"].get(k) == entry["real"]["answer"].get(k) for k in keys)
        entry["ratio_limit"] = round(entry["limit_2500"]["seconds"] / entry["list_2500"]["seconds"], 3)
        entry["ratio_lead_ids"] = round(entry["lead_ids_1000"]["seconds"] / entry["list_1000"]["seconds"], 3)
        entry["ratio_ordered"] = round(entry["ordered_limit_2500"]["seconds"]
                                       / (entry["read_once"]["seconds"] + entry["list_2500"]["seconds"]), 3)
        entry["ratio_dry_run"] = round(entry["dry_run"]["seconds"] / entry["real"]["seconds"], 3)
        if entry["limit_2500"]["answer"].get("total") != 2500 or entry["lead_ids_1000"]["answer"].get("total") != len(ids):
            self.problem(f"{label}: a selection's total is wrong: limit {entry['limit_2500']['answer']}, leadIds {entry['lead_ids_1000']['answer']}")
        if entry["ordered_limit_2500"]["answer"].get("total") != 2500 or entry["read_once"]["status"] != 422:
            self.problem(f"{label}: orderBy/limit {entry['ordered_limit_2500']['answer']}, where-nobody {entry['read_once']}")
        if not entry["dry_run_same_counts"] or entry["dry_run"]["answer"].get("dryRun") is not True:
            self.problem(f"{label}: the dry run {entry['dry_run']['answer']} differs from the import {entry['real']['answer']}")
        self.admin.run("TRUNCATE campaign_leads;")
        return entry

    # ---- request rate

    def settle(self, limit=180.0, key="request_rate_settle", before="the request rate"):
        """The request-rate phase measures the request path, not the cleanup of the phase before:
        after the large imports autovacuum works through millions of dead and new rows for
        minutes, on the same two cores. Start it from the state every import starts from (no
        campaign leads, nothing dirty) with no autovacuum worker running."""
        started = time.perf_counter()
        self.admin.run("TRUNCATE campaign_leads; VACUUM (ANALYZE) campaign_leads, campaigns, tokens; CHECKPOINT;")
        # As a checkpoint with fsync on would have (see flush_dirty_pages).
        dirty_before = flush_dirty_pages()
        workers = 0
        while time.perf_counter() - started < limit:
            workers = int(self.admin.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker';"))
            if workers == 0:
                break
            time.sleep(1.0)
        waited = time.perf_counter() - started
        self.results[key] = {"seconds": round(waited, 1), "autovacuum_workers_left": workers, "dirty_kib_flushed": dirty_before}
        log(f"settled before {before}: {waited:.1f} s (autovacuum workers still running: {workers}; "
            f"{dirty_before / 1024:.0f} MiB of dirty page cache flushed)")

    def request_rate(self):
        a = self.args
        self.settle()
        # A 10-member list (leads storage), imported once, so that every later import is a 422.
        list_id = str(uuid.uuid4())
        generate_leads_list(self.admin, self.user, list_id, 10, "2026-01-01 00:00:00+00")
        self.admin.run("VACUUM (ANALYZE) leads, lead_socials, lead_contacts, lead_attributes, list_memberships;")
        campaign = self.new_campaign("email", "bench 422")
        path = IMPORT_PATH.format(campaign=campaign)
        body = json.dumps({"listId": list_id})
        status, _, data = http_post(a.base_url, path, body, token=self.token)
        if status != 200:
            raise BenchError(f"the first import of the 10-member list answered {status}: {data[:300]!r}")
        status, _, data = http_post(a.base_url, path, body, token=self.token)
        if status != 422:
            raise BenchError(f"the second import of the 10-member list answered {status}, not 422: {data[:300]!r}")
        log(f"10-member list already imported: 422 {data.decode().strip()}")
        # A finished job of the token's user, for the polled GET /api/imports/{id}.
        job_campaign = self.new_campaign("email", "bench job poll")
        _, job, _, _ = self.run_job(job_campaign, list_id, "the job polled by wrk")
        if job["state"] != "finished" or job.get("httpStatus") != 200:
            raise BenchError(f"the 10-member job polled by wrk ended {job['state']} {job.get('httpStatus')}: {job}")
        job_path = f"/api/imports/{job['id']}"
        status, _, job_body = http_request(a.base_url, "GET", job_path, token=self.token)
        if status != 200 or json.loads(job_body).get("id") != job["id"]:
            raise BenchError(f"GET {job_path} answered {status}: {job_body[:300]!r}")
        log(f"a finished job to poll: GET {job_path} 200, {len(job_body)} bytes")

        scripts = os.path.join(a.scratch, "wrk")
        os.makedirs(scripts, exist_ok=True)
        s401 = os.path.join(scripts, "post-401.lua")
        s422 = os.path.join(scripts, "post-422.lua")
        lua_body = json.dumps({"listId": list_id})
        with open(s401, "w") as f:
            f.write(f'wrk.method = "POST"\nwrk.body = \'{lua_body}\'\nwrk.headers["Content-Type"] = "application/json"\n')
        with open(s422, "w") as f:
            f.write(f'wrk.method = "POST"\nwrk.body = \'{lua_body}\'\nwrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {self.token}"\n')
        os.chmod(s422, 0o600)
        sget = os.path.join(scripts, "get-job.lua")
        with open(sget, "w") as f:
            f.write(f'wrk.method = "GET"\nwrk.headers["Authorization"] = "Bearer {self.token}"\n')
        os.chmod(sget, 0o600)

        service_url = a.base_url + path
        ceiling_url = a.ceiling_url + path
        job_url = a.base_url + job_path
        conns, threads, duration = 32, 2, a.wrk_duration

        # A short warm-up of each target (kept connections opened, caches warm), not recorded.
        for url, script, log_path in ((service_url, s401, a.access_log), (ceiling_url, s401, a.ceiling_access_log),
                                      (service_url, s422, a.access_log), (job_url, sget, a.access_log)):
            subprocess.run(["wrk", "-t2", "-c32", "-d2s", "-s", script, url], capture_output=True, timeout=60)
            quiesce(log_path)

        rounds = {"service_401": [], "ceiling_401": [], "service_422": [], "service_get_job": []}
        for r in range(a.wrk_rounds):
            rounds["service_401"].append(run_wrk(service_url, s401, duration, conns, threads, a.access_log, f"401 service (round {r + 1})"))
            rounds["ceiling_401"].append(run_wrk(ceiling_url, s401, duration, conns, threads, a.ceiling_access_log, f"401 ceiling (round {r + 1})"))
            probe = self.step_probe()
            rounds["service_422"].append(run_wrk(service_url, s422, duration, conns, threads, a.access_log, f"422 service (round {r + 1})"))
            rounds["service_422"][-1].update(probe(f"  422 service (round {r + 1})"))
            log(f"  422 service (round {r + 1}): CPU s {rounds['service_422'][-1]['cpu']}")
            rounds["service_get_job"].append(run_wrk(job_url, sget, duration, conns, threads, a.access_log, f"GET job (round {r + 1})"))

        out = {"connections": conns, "threads": threads, "duration_s": duration, "rounds": a.wrk_rounds,
               "method": "best round by requests/s (outside load only ever lowers a figure)"}
        for name, runs in rounds.items():
            expected = {"service_401": "401", "ceiling_401": "401", "service_422": "422", "service_get_job": "200"}[name]
            for run in runs:
                log(f"  {name}: {run['requests_per_s']:,.0f} req/s, p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, "
                    f"non-2xx {run['non_2xx_3xx']}/{run['requests']}, socket errors {run['socket_errors']}, "
                    f"statuses {run['statuses']}")
                if expected == "200" and run["non_2xx_3xx"]:
                    self.problem(f"wrk {name}: {run['non_2xx_3xx']} of {run['requests']} responses were not 2xx/3xx")
                if expected != "200" and run["non_2xx_3xx"] != run["requests"]:
                    self.problem(f"wrk {name}: {run['requests'] - run['non_2xx_3xx']} of {run['requests']} responses were 2xx/3xx")
                # wrk stops with up to one request in flight per connection: those show up in nginx's
                # log as 499 (client gone), expected; anything else is not.
                cut = run["statuses"].get("499", 0)
                run["cut_at_end_499"] = cut
                if cut > conns:
                    self.problem(f"wrk {name}: {cut} requests logged 499 by nginx, more than the {conns} that can be in flight at the end")
                other = {k: v for k, v in run["statuses"].items() if k not in (expected, "499")}
                if other:
                    self.problem(f"wrk {name}: statuses other than {expected} in nginx's log: {other}")
                if any(run["socket_errors"].values()):
                    self.problem(f"wrk {name}: socket errors {run['socket_errors']}")
            best = max(runs, key=lambda r: r["requests_per_s"])
            out[name] = {k: v for k, v in best.items() if k != "raw"}
            out[name]["all_rounds_rps"] = [r["requests_per_s"] for r in runs]
            out[name]["raw"] = best["raw"]
        out["ratio_service_to_ceiling_401"] = round(out["service_401"]["requests_per_s"] / out["ceiling_401"]["requests_per_s"], 3)

        log(f"closed-loop cross-check of the 422 latencies ({conns} connections, {duration} s, uncorrected)")
        quiesce(a.access_log)
        flush_dirty_pages()
        check = closed_loop(service_url, lua_body, self.token, conns, duration)
        log(f"  uncorrected 422: {check['requests_per_s']:,} req/s (client-limited), p50 {check['p50_ms']:.2f} ms, "
            f"p99 {check['p99_ms']:.2f} ms, max {check['max_ms']:.0f} ms, {check['over_100ms']} over 100 ms, statuses {check['statuses']}")
        other = {k: v for k, v in check["statuses"].items() if k != "422"}
        if other or check["errors"]:
            self.problem(f"closed-loop 422 check: statuses other than 422: {other}, connection errors: {check['errors']}")
        out["service_422_uncorrected"] = check
        self.results["request_rate"] = out

    # ---- what the metrics cost, and a scrape

    def extra_stack(self, name, options):
        """Another `leadimport serve` with `options` on a socket of its own, behind another nginx
        from the shipped server block; returns (base URL, supervisor process, folder)."""
        a = self.args
        folder = os.path.join(a.scratch, f"stack-{name}")
        os.makedirs(folder, exist_ok=True)
        socket_path = os.path.join(folder, "service.sock")
        if len(socket_path) > 100:
            socket_path = f"/tmp/leadimport-bench-{name}-{os.getpid()}.sock"
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        env = dict(os.environ, DATABASE_URL=a.service_database_url)
        log_file = open(os.path.join(folder, "service.log"), "w")
        process = subprocess.Popen([a.binary, "serve", "--listen", f"unix:{socket_path}"] + options,
                                   env=env, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(socket_path) and time.time() < deadline:
            time.sleep(0.05)
        import socket as sockets
        with sockets.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        subprocess.run(["scripts/stack", "nginx-start", folder, str(port), socket_path], check=True, capture_output=True)
        base = f"http://127.0.0.1:{port}"
        while time.time() < deadline:
            try:
                if http_request(base, "GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise BenchError(f"the {name} stack ({' '.join(options)}) did not answer /healthz within 20 s")
        return base, process, folder

    def stop_stack(self, process, folder):
        subprocess.run(["scripts/stack", "nginx-stop", folder], capture_output=True)
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()

    def metrics_cost(self):
        """What counting costs the 401 path: wrk against two services with default options, one
        started with --no-metrics, rounds alternated; and how long a scrape of a service of 8
        worker processes takes, each process having served requests."""
        a = self.args
        self.settle(key="metrics_settle", before="the metrics' cost")
        path = IMPORT_PATH.format(campaign=str(uuid.uuid4()))
        scripts = os.path.join(a.scratch, "wrk")
        os.makedirs(scripts, exist_ok=True)
        s401 = os.path.join(scripts, "post-401-metrics.lua")
        with open(s401, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = \'{"listId":"00000000-0000-0000-0000-000000000000"}\'\n'
                    'wrk.headers["Content-Type"] = "application/json"\n')
        out = {"method": "wrk -t2 -c32 on the 401 path; rounds alternate between the two services; best round of each"}
        stacks = {}
        try:
            for name, options in (("with", []), ("without", ["--no-metrics"])):
                stacks[name] = self.extra_stack(f"metrics-{name}", options)
            if http_request(stacks["without"][0], "GET", "/metrics")[0] != 404:
                self.problem("a service started with --no-metrics still serves /metrics")
            for name in stacks:
                subprocess.run(["wrk", "-t2", "-c32", "-d2s", "-s", s401, stacks[name][0] + path], capture_output=True, timeout=60)
            rounds = {"with": [], "without": []}
            order = ["with", "without"]
            for r in range(max(3, a.wrk_rounds)):
                for name in (order if r % 2 == 0 else order[::-1]):
                    log_path = os.path.join(stacks[name][2], "nginx", "logs", "access.log")
                    rounds[name].append(run_wrk(stacks[name][0] + path, s401, a.wrk_duration, 32, 2, log_path,
                                                f"401 {name} metrics (round {r + 1})"))
            for name, runs in rounds.items():
                best = max(runs, key=lambda run: run["requests_per_s"])
                out[name] = {"requests_per_s": best["requests_per_s"], "p99_ms": best["p99_ms"],
                             "all_rounds_rps": [run["requests_per_s"] for run in runs]}
                log(f"  401 {name} metrics: best {best['requests_per_s']:,.0f} req/s (rounds {out[name]['all_rounds_rps']})")
            out["cost"] = round(1 - out["with"]["requests_per_s"] / out["without"]["requests_per_s"], 4)
        finally:
            for base, process, folder in stacks.values():
                self.stop_stack(process, folder)

        base, process, folder = self.extra_stack("metrics-8", ["--processes", "8"])
        try:
            # Every process serves some requests first, so every cell has series to add up.
            subprocess.run(["wrk", "-t2", "-c32", "-d3s", "-s", s401, base + path], capture_output=True, timeout=60)
            for _ in range(50):
                http_request(base, "GET", "/healthz")
            parsed = urllib.parse.urlparse(base)
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
            times, size = [], 0
            for i in range(520):
                started = time.perf_counter()
                connection.request("GET", "/metrics")
                reply = connection.getresponse()
                body = reply.read()
                elapsed = (time.perf_counter() - started) * 1000
                if reply.status != 200:
                    raise BenchError(f"GET /metrics answered {reply.status}")
                if i >= 20:
                    times.append(elapsed)
                size = len(body)
            connection.close()
            times.sort()
            processes = re.search(rb"\nleadimport_worker_processes (\d+)", body)
            out["scrape"] = {"processes": int(processes.group(1)) if processes else None, "scrapes": len(times), "bytes": size,
                             "p50_ms": round(times[len(times) // 2], 3), "p99_ms": round(times[int(len(times) * 0.99)], 3),
                             "max_ms": round(times[-1], 3)}
            log(f"  scrape of {out['scrape']['processes']} worker processes through nginx: p50 {out['scrape']['p50_ms']} ms, "
                f"p99 {out['scrape']['p99_ms']} ms, max {out['scrape']['max_ms']} ms, {size:,} bytes")
        finally:
            self.stop_stack(process, folder)
        self.results["metrics"] = out

    # ---- the whole run

    def run(self):
        a = self.args
        self.results["started_at"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self.results["mode"] = a.mode
        self.results["sizes"] = a.sizes
        self.results["parts"] = sorted(a.parts)
        self.results["machine"] = machine_facts(a, self.admin)
        self.results["service"] = {"command": "leadimport serve --listen unix:SOCKET (default options)",
                                   "supervisor_pid": a.service_pid}
        if float(self.results["machine"]["loadavg_at_start"][0]) > 1.0:
            log(f"note: load average {' '.join(self.results['machine']['loadavg_at_start'])} at start: other work is running on this machine")
        self.results["memory"]["service_idle_at_start"] = {k: v for k, v in memory_now(a.service_pid).items() if k != "per_process"}
        self.check_401_parity()
        self.create_user_and_token()

        for size in a.sizes if {"imports", "jobs", "selection"} & a.parts else ():
            lists = self.generate(size)
            if "imports" in a.parts:
                for storage in ("rows", "leads"):
                    for channel in ("email", "linkedin"):
                        entry = self.measure(size, storage, channel, lists[storage])
                        entry["loadavg_after"] = loadavg()
                        self.results["imports"].append(entry)
                        self.save(partial=True)
            if "jobs" in a.parts:
                for storage in ("rows", "leads"):
                    rounds = []
                    for number in range(1, a.job_rounds + 1):
                        rounds.append(self.measure_job(size, storage, lists[storage], round_number=number))
                    entry = best_of_rounds(rounds)
                    entry["loadavg_after"] = loadavg()
                    self.results["jobs"].append(entry)
                    self.save(partial=True)
            if "selection" in a.parts:
                for storage in ("rows", "leads"):
                    entry = self.measure_selection(size, storage, lists[storage])
                    entry["loadavg_after"] = loadavg()
                    self.results["selection"].append(entry)
                    self.save(partial=True)

        if "rate" in a.parts:
            self.request_rate()
        if "metrics" in a.parts:
            self.metrics_cost()
        self.results["memory"]["service_idle_at_end"] = {k: v for k, v in memory_now(a.service_pid).items() if k != "per_process"}
        self.results["machine"]["loadavg_at_end"] = loadavg()
        self.results["service_log"] = self.service_log_summary()
        self.results["finished_at"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self.evaluate()
        self.results["problems"] = self.problems
        path = self.save(partial=False)
        self.print_table()
        print(f"\nJSON: {path}\n      {os.path.join(a.out_dir, 'latest.json')}")
        if self.problems:
            print("\nPROBLEMS:")
            for p in self.problems:
                print("  - " + p)
            return 1
        return 0

    def service_log_summary(self):
        levels, messages = {}, {}
        try:
            with open(self.args.service_log, errors="replace") as f:
                for line in f:
                    m = re.match(r"level=(\w+) msg=(\"[^\"]*\"|\S+)", line)
                    if m:
                        levels[m.group(1)] = levels.get(m.group(1), 0) + 1
                        if m.group(1) != "info":
                            key = f"{m.group(1)} {m.group(2)}"
                            messages[key] = messages.get(key, 0) + 1
        except OSError:
            pass
        # A response the service could not deliver because nginx had dropped the connection (its
        # client, wrk, had gone: a 499 in nginx's log) is expected, as many as there were 499s.
        total_499 = 0
        for path in (self.args.access_log,):
            with open(path, "rb") as f:
                total_499 += sum(1 for line in f if b'" 499 ' in line)
        undelivered = sum(v for k, v in messages.items() if "response not delivered" in k)
        # A synchronous import of 100,000 members or more is a slow request by design (serve
        # --slow-request counts and logs it); a slow request in a run without one is a problem.
        large = any(e["size"] >= 100_000 for e in self.results["imports"] + self.results["jobs"] + self.results["selection"])
        unexpected = {k: v for k, v in messages.items()
                      if "response not delivered" not in k and not (large and '"slow request"' in k)}
        if unexpected:
            self.problem(f"the service logged warnings or errors: {unexpected}")
        if undelivered > total_499:
            self.problem(f"the service failed to deliver {undelivered} responses, nginx logged only {total_499} client aborts (499)")
        return {"lines_by_level": levels, "non_info_messages": messages,
                "undelivered_responses": undelivered, "nginx_499_total": total_499}

    def save(self, partial):
        os.makedirs(self.args.out_dir, exist_ok=True)
        self.results["partial"] = partial
        self.results["problems"] = self.problems
        stamp = self.args.stamp
        path = os.path.join(self.args.out_dir, f"results-{stamp}.json")
        with open(path, "w") as f:
            json.dump(self.results, f, indent=2)
        if not partial:
            with open(os.path.join(self.args.out_dir, "latest.json"), "w") as f:
                json.dump(self.results, f, indent=2)
        return path

    # ---- targets and the table

    def evaluate(self):
        targets = []

        def add(name, figure, target, ok, unit=""):
            targets.append({"name": name, "figure": figure, "target": target, "unit": unit,
                            "verdict": None if ok is None else ("PASS" if ok else "MISS")})
            return targets[-1]

        for e in self.results["imports"]:
            big = e["size"] >= TARGET_MIN_SIZE
            label = f"{e['size']:,} {e['storage']}/{e['channel']}"
            e["verdict_a"] = ("PASS" if e["ratio_endpoint_to_a"] <= TARGET_WRITE_RATIO else "MISS") if big else "info"
            e["verdict_b"] = ("PASS" if e["ratio_endpoint_to_b"] < TARGET_ONE_STATEMENT_RATIO else "MISS") if big else "info"
            if big:
                add(f"import {label}: endpoint / write cost (a)", e["ratio_endpoint_to_a"], f"<= {TARGET_WRITE_RATIO}",
                    e["ratio_endpoint_to_a"] <= TARGET_WRITE_RATIO, "x")
                add(f"import {label}: endpoint / one statement (b)", e["ratio_endpoint_to_b"], f"< {TARGET_ONE_STATEMENT_RATIO}",
                    e["ratio_endpoint_to_b"] < TARGET_ONE_STATEMENT_RATIO, "x")

        imports = self.results["imports"]
        if imports:
            peak = max(imports, key=lambda e: e["endpoint"]["memory"]["peak_pss_bytes"] or 0)
            peak_mib = peak["endpoint"]["memory"]["peak_pss_bytes"] / MiB
            peak_rss = max(e["endpoint"]["memory"]["peak_rss_bytes"] for e in imports) / MiB
            self.results["memory"]["peak_pss_mib"] = round(peak_mib, 2)
            self.results["memory"]["peak_rss_mib"] = round(peak_rss, 2)
            self.results["memory"]["peak_at"] = f"{peak['size']:,} {peak['storage']}/{peak['channel']}"
            add("memory: peak PSS of the whole service during the imports", round(peak_mib, 2), f"< {TARGET_PEAK_MIB}",
                peak_mib < TARGET_PEAK_MIB, "MiB")
            smallest, largest = min(self.args.sizes), max(self.args.sizes)
            growth = {}
            if largest > smallest:
                for storage in ("rows", "leads"):
                    for channel in ("email", "linkedin"):
                        lo = next(e for e in imports if e["size"] == smallest and e["storage"] == storage and e["channel"] == channel)
                        hi = next(e for e in imports if e["size"] == largest and e["storage"] == storage and e["channel"] == channel)
                        g = (hi["endpoint"]["memory"]["peak_pss_bytes"] - lo["endpoint"]["memory"]["peak_pss_bytes"]) / MiB
                        growth[f"{storage}/{channel}"] = round(g, 2)
                overall_lo = max(e["endpoint"]["memory"]["peak_pss_bytes"] for e in imports if e["size"] == smallest) / MiB
                overall_hi = max(e["endpoint"]["memory"]["peak_pss_bytes"] for e in imports if e["size"] == largest) / MiB
                growth["overall (max peak)"] = round(overall_hi - overall_lo, 2)
                self.results["memory"]["growth_mib"] = growth
                self.results["memory"]["growth_from_to"] = [smallest, largest]
                worst = max(growth.values())
                add(f"memory: peak PSS growth {smallest:,} -> {largest:,} members (worst of storage/channel)",
                    worst, f"< {TARGET_GROWTH_MIB}", worst < TARGET_GROWTH_MIB if largest >= 1_000_000 else None, "MiB")

        jobs = self.results["jobs"]
        for e in jobs:
            judged = e["size"] >= TARGET_JOB_SIZE
            ratio = e["ratio_job_to_sync"]
            e["verdict"] = ("PASS" if ratio <= TARGET_JOB_RATIO else "MISS") if judged else "info"
            if e["size"] >= TARGET_MIN_SIZE:
                add(f"job {e['size']:,} {e['storage']}/{e['channel']}: job (created -> finished) / synchronous import",
                    ratio, f"<= {TARGET_JOB_RATIO}", (ratio <= TARGET_JOB_RATIO) if judged else None, "x")
        if jobs:
            peak = max(jobs, key=lambda e: e["job"]["memory"]["peak_pss_bytes"] or 0)
            peak_mib = peak["job"]["memory"]["peak_pss_bytes"] / MiB
            jm = {"peak_pss_mib": round(peak_mib, 2), "peak_at": f"{peak['size']:,} {peak['storage']}/{peak['channel']}",
                  "peak_rss_mib": round(max(e["job"]["memory"]["peak_rss_bytes"] for e in jobs) / MiB, 2)}
            add("memory: peak PSS of the whole service while a job runs", round(peak_mib, 2), f"< {TARGET_PEAK_MIB}",
                peak_mib < TARGET_PEAK_MIB, "MiB")
            smallest, largest = min(e["size"] for e in jobs), max(e["size"] for e in jobs)
            if largest > smallest:
                growth = {}
                for storage in ("rows", "leads"):
                    lo = [e for e in jobs if e["size"] == smallest and e["storage"] == storage]
                    hi = [e for e in jobs if e["size"] == largest and e["storage"] == storage]
                    if lo and hi:
                        growth[f"{storage}/{hi[0]['channel']}"] = round(
                            (hi[0]["job"]["memory"]["peak_pss_bytes"] - lo[0]["job"]["memory"]["peak_pss_bytes"]) / MiB, 2)
                jm["growth_mib"] = growth
                jm["growth_from_to"] = [smallest, largest]
                worst = max(growth.values())
                add(f"memory: peak PSS growth while a job runs, {smallest:,} -> {largest:,} members (worst storage)",
                    worst, f"< {TARGET_GROWTH_MIB}", worst < TARGET_GROWTH_MIB if largest >= 1_000_000 else None, "MiB")
            self.results["memory"]["jobs"] = jm

        selection = self.results["selection"]
        if selection:
            # The selections' own; the whole-list import beside them is judged in part 2.
            kinds = ("read_once", "ordered_limit_2500", "dry_run")
            peak = max(((e, k) for e in selection for k in kinds), key=lambda p: p[0][p[1]]["memory"]["peak_pss_bytes"] or 0)
            peak_mib = peak[0][peak[1]]["memory"]["peak_pss_bytes"] / MiB
            self.results["memory"]["selection"] = {"peak_pss_mib": round(peak_mib, 2), "peak_at": f"{peak[0]['size']:,} {peak[0]['storage']} {peak[1]}"}
            add("memory: peak PSS of the whole service during a where, an orderBy, a dry run", round(peak_mib, 2), f"< {TARGET_PEAK_MIB}",
                peak_mib < TARGET_PEAK_MIB, "MiB")
            sizes = sorted({e["size"] for e in selection})
            if len(sizes) > 1:
                growth = {}
                for storage in ("rows", "leads"):
                    for k in kinds:
                        lo = [e for e in selection if e["size"] == sizes[0] and e["storage"] == storage]
                        hi = [e for e in selection if e["size"] == sizes[-1] and e["storage"] == storage]
                        if lo and hi:
                            growth[f"{storage} {k}"] = round((hi[0][k]["memory"]["peak_pss_bytes"] - lo[0][k]["memory"]["peak_pss_bytes"]) / MiB, 2)
                self.results["memory"]["selection"]["growth_mib"] = growth
                worst = max(growth.values())
                add(f"memory: peak PSS growth of a where, an orderBy, a dry run, {sizes[0]:,} -> {sizes[-1]:,} members (worst)",
                    worst, f"< {TARGET_GROWTH_MIB}", worst < TARGET_GROWTH_MIB if sizes[-1] >= 1_000_000 else None, "MiB")
        for e in self.results["selection"]:
            label = f"{e['size']:,} {e['storage']}/{e['channel']}"
            judged = e["size"] >= 1_000_000
            add(f"selection {label}: limit 2500 / a 2,500-member list", e["ratio_limit"], f"<= {TARGET_SELECTED_RATIO}",
                (e["ratio_limit"] <= TARGET_SELECTED_RATIO) if judged else None, "x")
            add(f"selection {label}: leadIds of 1,000 / a 1,000-member list", e["ratio_lead_ids"], f"<= {TARGET_SELECTED_RATIO}",
                (e["ratio_lead_ids"] <= TARGET_SELECTED_RATIO) if judged else None, "x")
            add(f"selection {label}: orderBy + limit 2500 / (one read of the list + a 2,500-member list)", e["ratio_ordered"], "<= 1.0",
                (e["ratio_ordered"] <= 1.0) if judged else None, "x")
            add(f"selection {label}: dry run / the import", e["ratio_dry_run"], f"<= {TARGET_DRY_RUN_RATIO}",
                (e["ratio_dry_run"] <= TARGET_DRY_RUN_RATIO) if judged else None, "x")

        rr = self.results["request_rate"]
        if rr:
            add("401 without a token: service / C ceiling req/s", rr["ratio_service_to_ceiling_401"], f">= {TARGET_CEILING_RATIO}",
                rr["ratio_service_to_ceiling_401"] >= TARGET_CEILING_RATIO, "x")
            add("422 import of a 10-member list: req/s", round(rr["service_422"]["requests_per_s"]), f">= {TARGET_422_RPS:.0f}",
                rr["service_422"]["requests_per_s"] >= TARGET_422_RPS, "req/s")
            add("422 import of a 10-member list: p99", rr["service_422"]["p99_ms"], f"< {TARGET_422_P99_MS:.0f}",
                rr["service_422"]["p99_ms"] < TARGET_422_P99_MS, "ms")
            if "service_get_job" in rr:
                add("GET /api/imports/{id} of a finished job: req/s", round(rr["service_get_job"]["requests_per_s"]),
                    f">= {TARGET_GET_JOB_RPS:.0f}", rr["service_get_job"]["requests_per_s"] >= TARGET_GET_JOB_RPS, "req/s")
        mx = self.results.get("metrics")
        if mx:
            add("401 req/s lost to recording metrics (1 - with / without)", round(mx["cost"] * 100, 2), f"<= {TARGET_METRICS_COST * 100:.0f}",
                mx["cost"] <= TARGET_METRICS_COST, "%")
            if "scrape" in mx:
                add(f"GET /metrics of {mx['scrape']['processes']} worker processes: p99", mx["scrape"]["p99_ms"],
                    f"< {TARGET_SCRAPE_MS:.0f}", mx["scrape"]["p99_ms"] < TARGET_SCRAPE_MS, "ms")
        self.results["targets"] = targets

    def print_table(self):
        r = self.results
        m = r["machine"]
        print()
        print(f"leadimport bench ({r['mode']}), {r['started_at']} .. {r['finished_at']}")
        print(f"  {m.get('cpu_model')}, {m['nproc']} cores, {m.get('memory_total_mib')} MiB; {m['postgresql'].split(' on ')[0]}; "
              f"{m['nginx']}; service to PostgreSQL: {m.get('service_database_transport', 'unknown')}; commit {m['git_commit'][:12]}"
              + (f" + uncommitted changes in {len(m['git_dirty_files'])} files" if m['git_dirty_files'] else ""))
        print(f"  load average at start {' '.join(m['loadavg_at_start'])}, at end {' '.join(f'{x:.2f}' for x in m['loadavg_at_end'])}")

        if r["imports"]:
            print("\n1. Large imports through nginx, beside the database alone (each into a fresh campaign; rows/s = members / s)")
            print(f"   (a) = the same mapped rows from a temp table, one INSERT ... SELECT ... ON CONFLICT DO NOTHING;"
                  f" (b) = one statement mapping + inserting from the list's tables")
            print(f"   targets at >= {TARGET_MIN_SIZE:,} members: endpoint/(a) <= {TARGET_WRITE_RATIO}, endpoint/(b) < {TARGET_ONE_STATEMENT_RATIO}")
            head = (f"   {'members':>9} {'storage':7} {'channel':8} | {'endpoint s':>10} {'rows/s':>9} | {'(a) s':>7} {'rows/s':>9} |"
                    f" {'(b) s':>7} {'rows/s':>9} | {'end/(a)':>7} {'':4} | {'end/(b)':>7} {'':4} | {'imported/dup/invalid/err':>26} | same rows")
            print(head)
            print("   " + "-" * (len(head) - 3))
            for e in r["imports"]:
                c = e["endpoint"]["counts"]
                counts = "/".join(str(c.get(k, "?")) for k in ("imported", "duplicates", "invalid", "errors"))
                print(f"   {e['size']:>9,} {e['storage']:7} {e['channel']:8} | {e['endpoint']['seconds']:>10.2f} {e['endpoint']['rows_per_s']:>9,} |"
                      f" {e['write_cost_a']['seconds']:>7.2f} {e['write_cost_a']['rows_per_s']:>9,} |"
                      f" {e['one_statement_b']['seconds']:>7.2f} {e['one_statement_b']['rows_per_s']:>9,} |"
                      f" {e['ratio_endpoint_to_a']:>7.2f} {e['verdict_a']:4} | {e['ratio_endpoint_to_b']:>7.2f} {e['verdict_b']:4} |"
                      f" {counts:>26} | {'yes' if e['same_rows'] else 'NO'}")

            print("\n2. The service's memory during each import (all its processes: supervisor + workers)")
            print("   PSS = proportional set size (shared pages divided among the processes sharing them): the figure judged;")
            print("   RSS = resident set size summed per process (counts shared libraries once per process): for reference")
            print("   idle = just before the import; peak - idle = what the import itself added")
            print("   peak = the higher of the highest sample (every 250 ms) and, per process, PSS before + how far the")
            print("   kernel's own peak of its RSS (VmHWM, reset before the import) rose: samples miss a 0.2 s import's peak")
            print(f"   {'members':>9} {'storage':7} {'channel':8} | {'idle PSS':>8} {'peak PSS':>8} {'peak-idle':>9} {'sampled':>8}"
                  f" {'peak RSS':>8} {'peak USS':>8} MiB | samples")
            for e in r["imports"]:
                mm = e["endpoint"]["memory"]
                sampled = mm.get("sampled_peak_pss_bytes") or 0
                print(f"   {e['size']:>9,} {e['storage']:7} {e['channel']:8} | {mm['idle_before_pss_bytes'] / MiB:>8.1f}"
                      f" {mm['peak_pss_bytes'] / MiB:>8.1f} {(mm['peak_pss_bytes'] - mm['idle_before_pss_bytes']) / MiB:>+9.1f}"
                      f" {sampled / MiB:>8.1f} {mm['peak_rss_bytes'] / MiB:>8.1f} {mm['peak_uss_bytes'] / MiB:>8.1f}     | {mm['samples']}")
            mem = r["memory"]
            if "peak_pss_mib" in mem:
                print(f"   peak PSS {mem['peak_pss_mib']:.1f} MiB (at {mem['peak_at']}), target < {TARGET_PEAK_MIB:.0f} MiB: "
                      f"{'PASS' if mem['peak_pss_mib'] < TARGET_PEAK_MIB else 'MISS'}   (peak summed RSS {mem['peak_rss_mib']:.1f} MiB)")
            if "service_idle_at_start" in mem and "service_idle_at_end" in mem:
                a, b = mem["service_idle_at_start"], mem["service_idle_at_end"]
                print(f"   service idle: PSS {a['pss'] / MiB:.1f} MiB at start, {b['pss'] / MiB:.1f} MiB at the end of the run"
                      f" (RSS {a['rss'] / MiB:.1f} -> {b['rss'] / MiB:.1f} MiB, {b['processes']} processes)")
            if "growth_mib" in mem:
                lo, hi = mem["growth_from_to"]
                verdict_applies = hi >= 1_000_000
                for k, v in mem["growth_mib"].items():
                    verdict = ("PASS" if v < TARGET_GROWTH_MIB else "MISS") if verdict_applies else "info (target is for 1,000,000)"
                    print(f"   growth of peak PSS {lo:,} -> {hi:,} members, {k}: {v:+.2f} MiB, target < {TARGET_GROWTH_MIB:.0f} MiB: {verdict}")

        rr = r["request_rate"]
        if rr:
            print(f"\n3. Request rate through nginx: wrk -t{rr['threads']} -c{rr['connections']} -d{rr['duration_s']}s --latency "
                  f"(best of {rr['rounds']} round{'s' if rr['rounds'] > 1 else ''})")
            print(f"   {'scenario':44} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'non-2xx/total':>17} | socket errors | 499 at end")
            rows = (("401 no token, service", rr["service_401"]), ("401 no token, C libfcgi ceiling", rr["ceiling_401"]),
                    ("422 10-member list already imported, service", rr["service_422"]))
            if "service_get_job" in rr:
                rows += (("GET /api/imports/{id}, a finished job", rr["service_get_job"]),)
            for name, x in rows:
                errs = sum(x["socket_errors"].values())
                print(f"   {name:44} | {x['requests_per_s']:>9,.0f} | {x['p50_ms']:>7.2f} | {x['p99_ms']:>7.2f} |"
                      f" {x['non_2xx_3xx']:>8}/{x['requests']:<8} | {errs:>13} | {x.get('cut_at_end_499', 0):>10}"
                      + (f"  (rounds: {', '.join(f'{v:,.0f}' for v in x['all_rounds_rps'])})" if len(x['all_rounds_rps']) > 1 else ""))
            u = rr.get("service_422_uncorrected")
            if u:
                print(f"   {'422, uncorrected closed-loop cross-check':44} | {u['requests_per_s']:>9,} | {u['p50_ms']:>7.2f} | {u['p99_ms']:>7.2f} |"
                      f" max {u['max_ms']:,.0f} ms, {u['over_100ms']} of {u['requests']} over 100 ms, statuses {u['statuses']}")
                print("   (wrk's p50/p99 include its coordinated-omission correction: each latency >= 2x the mean interval per")
                print("    connection adds synthetic samples below it. The cross-check records what each request saw; its rate")
                print("    is limited by the Python client. The targets are judged on wrk's figures.)")
            ratio = rr["ratio_service_to_ceiling_401"]
            print(f"   401: service / ceiling = {ratio:.2f}, target >= {TARGET_CEILING_RATIO}: {'PASS' if ratio >= TARGET_CEILING_RATIO else 'MISS'}")
            x = rr["service_422"]
            print(f"   422: {x['requests_per_s']:,.0f} req/s, target >= {TARGET_422_RPS:,.0f}: {'PASS' if x['requests_per_s'] >= TARGET_422_RPS else 'MISS'};"
                  f" p99 {x['p99_ms']:.2f} ms, target < {TARGET_422_P99_MS:.0f} ms: {'PASS' if x['p99_ms'] < TARGET_422_P99_MS else 'MISS'}")
            g = rr.get("service_get_job")
            if g:
                print(f"   GET job: {g['requests_per_s']:,.0f} req/s, target >= {TARGET_GET_JOB_RPS:,.0f}:"
                      f" {'PASS' if g['requests_per_s'] >= TARGET_GET_JOB_RPS else 'MISS'} (p99 {g['p99_ms']:.2f} ms, no target)")

        mx = r.get("metrics")
        if mx:
            print(f"\n6. What recording metrics costs: {mx['method']}")
            print(f"   401 with metrics    {mx['with']['requests_per_s']:>9,.0f} req/s (rounds {', '.join(f'{v:,.0f}' for v in mx['with']['all_rounds_rps'])})")
            print(f"   401 --no-metrics    {mx['without']['requests_per_s']:>9,.0f} req/s (rounds {', '.join(f'{v:,.0f}' for v in mx['without']['all_rounds_rps'])})")
            print(f"   cost {mx['cost'] * 100:+.2f}% of the 401 rate, target <= {TARGET_METRICS_COST * 100:.0f}%:"
                  f" {'PASS' if mx['cost'] <= TARGET_METRICS_COST else 'MISS'}")
            sc = mx.get("scrape")
            if sc:
                print(f"   GET /metrics through nginx, {sc['processes']} worker processes, {sc['scrapes']} scrapes on a kept connection:"
                      f" p50 {sc['p50_ms']} ms, p99 {sc['p99_ms']} ms, max {sc['max_ms']} ms ({sc['bytes']:,} bytes);"
                      f" target p99 < {TARGET_SCRAPE_MS:.0f} ms: {'PASS' if sc['p99_ms'] < TARGET_SCRAPE_MS else 'MISS'}")

        jobs = r["jobs"]
        if jobs:
            print("\n4. Import jobs beside the synchronous import of the same list (each into a fresh campaign, same state)")
            print("   job s = created_at -> finished_at of the job row (the database's clock; the stats recompute comes after);")
            print(f"   client s = the POST to the poll that saw it finished (polled every {JOB_POLL_S * 1000:.0f} ms); queued = created -> started")
            print(f"   target at >= {TARGET_JOB_SIZE:,} members: job s / sync s <= {TARGET_JOB_RATIO}")
            head = (f"   {'members':>9} {'storage':7} {'channel':8} | {'sync s':>7} | {'job s':>7} {'queued':>6} {'client s':>8} |"
                    f" {'job/sync':>8} {'':4} | {'client/sync':>11} | {'imported/dup/invalid/err':>26} | same counts, rows |"
                    f" rejections (pages)")
            print(head)
            print("   " + "-" * (len(head) - 3))
            for e in jobs:
                j = e["job"]
                c = j["counts"]
                counts = "/".join(str(c.get(k, "?")) for k in ("imported", "duplicates", "invalid", "errors"))
                rej = j["rejections"]
                print(f"   {e['size']:>9,} {e['storage']:7} {e['channel']:8} | {e['sync']['seconds']:>7.2f} |"
                      f" {j['seconds']:>7.2f} {j['queued_s']:>6.2f} {j['seconds_client']:>8.2f} |"
                      f" {e['ratio_job_to_sync']:>8.3f} {e['verdict']:4} | {e['ratio_job_to_sync_client']:>11.3f} | {counts:>26} |"
                      f" {'yes' if e['same_counts'] else 'NO':>3}, {'yes' if e['same_rows'] else 'NO':>3}        |"
                      f" {'complete' if e['rejections_complete'] else 'INCOMPLETE'} {rej['items']:,} ({rej['pages']})")
            print("   The service's memory while each job runs (as in 2: peak from samples and the kernel's VmHWM)")
            print(f"   {'members':>9} {'storage':7} {'channel':8} | {'idle PSS':>8} {'peak PSS':>8} {'peak-idle':>9} {'sampled':>8}"
                  f" {'peak RSS':>8} {'peak USS':>8} MiB | samples")
            for e in jobs:
                mm = e["job"]["memory"]
                sampled = mm.get("sampled_peak_pss_bytes") or 0
                print(f"   {e['size']:>9,} {e['storage']:7} {e['channel']:8} | {mm['idle_before_pss_bytes'] / MiB:>8.1f}"
                      f" {mm['peak_pss_bytes'] / MiB:>8.1f} {(mm['peak_pss_bytes'] - mm['idle_before_pss_bytes']) / MiB:>+9.1f}"
                      f" {sampled / MiB:>8.1f} {mm['peak_rss_bytes'] / MiB:>8.1f} {mm['peak_uss_bytes'] / MiB:>8.1f}     | {mm['samples']}")
            jm = r["memory"].get("jobs", {})
            if jm:
                print(f"   peak PSS while a job runs {jm['peak_pss_mib']:.1f} MiB (at {jm['peak_at']}), target < {TARGET_PEAK_MIB:.0f} MiB: "
                      f"{'PASS' if jm['peak_pss_mib'] < TARGET_PEAK_MIB else 'MISS'}   (peak summed RSS {jm['peak_rss_mib']:.1f} MiB)")
            if "growth_mib" in jm:
                lo, hi = jm["growth_from_to"]
                for k, v in jm["growth_mib"].items():
                    verdict = ("PASS" if v < TARGET_GROWTH_MIB else "MISS") if hi >= 1_000_000 else "info (target is for 1,000,000)"
                    print(f"   growth of peak PSS while a job runs {lo:,} -> {hi:,} members, {k}: {v:+.2f} MiB,"
                          f" target < {TARGET_GROWTH_MIB:.0f} MiB: {verdict}")

        sel = r.get("selection") or []
        if sel:
            print("\n5. Filters and dry runs (docs/selection.md), each into a fresh campaign; small imports best of "
                  f"{SELECTION_ROUNDS}, read once and orderBy+limit best of 3, import and dry run best of 2")
            head = (f"   {'members':>9} {'storage':7} | {'2,500 list':>10} {'limit 2500':>10} {'ratio':>6} | {'1,000 list':>10}"
                    f" {'leadIds':>8} {'ratio':>6} | {'read once':>9} {'orderBy+limit':>13} {'ratio':>6} | {'import':>7} {'dry run':>7}"
                    f" {'ratio':>6} same counts")
            print(head)
            print("   " + "-" * (len(head) - 3))
            for e in sel:
                print(f"   {e['size']:>9,} {e['storage']:7} | {e['list_2500']['seconds']:>10.3f} {e['limit_2500']['seconds']:>10.3f}"
                      f" {e['ratio_limit']:>6.2f} | {e['list_1000']['seconds']:>10.3f} {e['lead_ids_1000']['seconds']:>8.3f}"
                      f" {e['ratio_lead_ids']:>6.2f} | {e['read_once']['seconds']:>9.2f} {e['ordered_limit_2500']['seconds']:>13.2f}"
                      f" {e['ratio_ordered']:>6.2f} | {e['real']['seconds']:>7.2f} {e['dry_run']['seconds']:>7.2f}"
                      f" {e['ratio_dry_run']:>6.2f} {'yes' if e['dry_run_same_counts'] else 'NO'}")

        print("\nTargets")
        for t in r["targets"]:
            verdict = t["verdict"] or "info"
            print(f"   {verdict:5} {t['name']}: {t['figure']} {t['unit']} (target {t['target']} {t['unit']})")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True, help="nginx in front of the service")
    p.add_argument("--ceiling-url", required=True, help="nginx in front of the C ceiling")
    p.add_argument("--service-pid", type=int, required=True, help="the supervisor's pid")
    p.add_argument("--service-database-url", default="", help="the service's DATABASE_URL (only its transport is recorded)")
    p.add_argument("--admin-url", required=True)
    p.add_argument("--owner-url", required=True)
    p.add_argument("--scratch", required=True)
    p.add_argument("--access-log", required=True)
    p.add_argument("--ceiling-access-log", required=True)
    p.add_argument("--service-log", required=True)
    p.add_argument("--binary", help="the service binary measured (for its digest)")
    p.add_argument("--binary-source", help="where the measured binary was copied from")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--wrk-duration", type=int, default=10)
    p.add_argument("--wrk-rounds", type=int, default=2)
    p.add_argument("--job-rounds", type=int, default=2, help="rounds of (synchronous import, job) per list; the best of each side is judged")
    p.add_argument("--mode", default="full")
    p.add_argument("--parts", default="imports,jobs,selection,rate,metrics",
                   help="what to measure: imports (and their memory), jobs (beside the synchronous import), rate (wrk)")
    args = p.parse_args()
    args.parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    if not args.parts or args.parts - {"imports", "jobs", "selection", "rate", "metrics"}:
        p.error("--parts: a comma-separated subset of imports,jobs,selection,rate,metrics")
    args.sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())
    if not args.sizes or any(s < 10 for s in args.sizes):
        p.error("--sizes: a comma-separated list of sizes of at least 10")
    args.stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        return Bench(args).run()
    except BenchError as error:
        log(f"FAILED: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
