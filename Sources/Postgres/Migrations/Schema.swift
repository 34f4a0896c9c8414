/// The schema versions. Version 1 is the shared schema of the contract (section 2) plus what the
/// import service adds to it: CHECKs on the enumerated values, `campaign_leads.identity_key` with
/// its trigger and unique index (per-channel dedup enforced by the database), the indexes for
/// keyset paging, and `updated_at` maintenance.
enum Schema {
    static let version1 = Migration(version: 1, name: "initial schema", sql: #"""
        CREATE TABLE users (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            email text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT users_email_key UNIQUE (email)
        );

        CREATE TABLE tokens (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid REFERENCES users (id) ON DELETE CASCADE,
            token_hash bytea NOT NULL,
            name text,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            revoked_at timestamptz,
            last_used_at timestamptz,
            CONSTRAINT tokens_token_hash_key UNIQUE (token_hash)
        );
        CREATE INDEX tokens_user_id_idx ON tokens (user_id);

        CREATE TABLE lists (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid REFERENCES users (id) ON DELETE CASCADE,
            name text NOT NULL DEFAULT '',
            storage text NOT NULL DEFAULT 'leads',
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT lists_storage_check CHECK (storage IN ('rows', 'leads'))
        );
        CREATE INDEX lists_user_id_idx ON lists (user_id);

        CREATE TABLE list_rows (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            list_id uuid NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
            linkedin_url text,
            profile_data jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now()
        );
        -- Keyset paging in list order: WHERE list_id = $1 AND (created_at, id) > ($2, $3)
        -- ORDER BY created_at, id LIMIT 1000.
        CREATE INDEX list_rows_list_order_idx ON list_rows (list_id, created_at, id);

        CREATE TABLE leads (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid REFERENCES users (id) ON DELETE CASCADE,
            first_name text,
            last_name text,
            full_name text,
            company text,
            title text,
            headline text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX leads_user_id_idx ON leads (user_id);

        CREATE TABLE lead_socials (
            lead_id uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
            network text NOT NULL,
            url text NOT NULL,
            PRIMARY KEY (lead_id, network)
        );

        CREATE TABLE lead_contacts (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            lead_id uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
            kind text NOT NULL,
            value text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT lead_contacts_kind_check CHECK (kind IN ('work_email', 'personal_email', 'phone'))
        );
        -- A lead's contacts of one kind, oldest first.
        CREATE INDEX lead_contacts_lead_id_kind_created_at_id_idx ON lead_contacts (lead_id, kind, created_at, id);

        CREATE TABLE lead_attributes (
            lead_id uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
            key text NOT NULL,
            value jsonb NOT NULL,
            PRIMARY KEY (lead_id, key)
        );

        CREATE TABLE list_memberships (
            list_id uuid NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
            lead_id uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (list_id, lead_id)
        );
        -- Keyset paging in list order: WHERE list_id = $1 AND (created_at, lead_id) > ($2, $3)
        -- ORDER BY created_at, lead_id LIMIT 1000.
        CREATE INDEX list_memberships_list_order_idx ON list_memberships (list_id, created_at, lead_id);
        CREATE INDEX list_memberships_lead_id_idx ON list_memberships (lead_id);

        CREATE TABLE campaigns (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid REFERENCES users (id) ON DELETE CASCADE,
            name text NOT NULL DEFAULT '',
            channel text NOT NULL,
            status text NOT NULL DEFAULT 'draft',
            stats jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT campaigns_channel_check CHECK (channel IN ('email', 'linkedin')),
            CONSTRAINT campaigns_status_check CHECK (status IN ('draft', 'launching', 'active', 'paused', 'completed'))
        );
        CREATE INDEX campaigns_user_id_idx ON campaigns (user_id);

        CREATE TABLE campaign_leads (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            user_id uuid REFERENCES users (id) ON DELETE CASCADE,
            status text NOT NULL DEFAULT 'pending',
            email text,
            linkedin_url text,
            first_name text,
            last_name text,
            name text,
            company text,
            position text,
            headline text,
            source text,
            source_ref text,
            custom_fields jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            -- The campaign's identity of this lead, normalized; always computed by the trigger below.
            identity_key text,
            -- Per-channel dedup. A plain (not partial) unique constraint, so that
            -- ON CONFLICT (campaign_id, identity_key) DO NOTHING can name it; NULLs never collide.
            CONSTRAINT campaign_leads_campaign_id_identity_key_key UNIQUE (campaign_id, identity_key)
        );
        -- The stats recompute: counts by status within a campaign.
        CREATE INDEX campaign_leads_campaign_id_status_idx ON campaign_leads (campaign_id, status);
        CREATE INDEX campaign_leads_user_id_idx ON campaign_leads (user_id);

        -- Emails compare trimmed and lowercased; an empty one is no identity.
        CREATE FUNCTION leadimport_normalize_email(raw text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $fn$
            SELECT nullif(lower(regexp_replace(raw, '^[[:space:]]+|[[:space:]]+$', '', 'g')), '')
        $fn$;

        -- The canonical form of a real LinkedIn profile URL, or NULL when the value is not one.
        -- The same rules as LeadCore's LinkedInURL.normalized: trim; no spaces, control or format
        -- characters; http or https or no scheme (a leading // is dropped); no query, no fragment;
        -- no user info; a port is dropped; host linkedin.com or any subdomain of it (one trailing
        -- dot allowed) becomes www.linkedin.com; trailing slashes go; /in/NAME is cut to that with
        -- NAME lowercased; /pub/... and /sales/... keep their case (no empty segment); a value or
        -- profile name beginning with imported- (any case) is a placeholder, never a profile.
        CREATE FUNCTION leadimport_normalize_linkedin(raw text) RETURNS text
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
        AS $fn$
        DECLARE
            v text;
            m text[];
            authority text;
            host text;
            path text;
            slash int;
            segments text[];
            kind text;
            tail text[];
        BEGIN
            v := regexp_replace(raw, '^[[:space:]]+|[[:space:]]+$', '', 'g');
            IF v = '' OR lower(left(v, 9)) = 'imported-' THEN
                RETURN NULL;
            END IF;
            IF v ~ '[[:space:][:cntrl:]\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF]' THEN
                RETURN NULL;
            END IF;

            m := regexp_match(v, '^([^:]*)://(.*)$');
            IF m IS NOT NULL THEN
                IF lower(m[1]) NOT IN ('http', 'https') THEN
                    RETURN NULL;
                END IF;
                v := m[2];
            ELSIF left(v, 2) = '//' THEN
                v := substr(v, 3);
            END IF;
            -- Query and fragment go first: a / inside them belongs to neither host nor path.
            v := (regexp_match(v, '^[^?#]*'))[1];

            slash := strpos(v, '/');
            IF slash > 0 THEN
                authority := left(v, slash - 1);
                path := substr(v, slash);
            ELSE
                authority := v;
                path := '';
            END IF;
            IF strpos(authority, '@') > 0 THEN
                RETURN NULL;
            END IF;
            host := lower(authority);
            m := regexp_match(host, '^(.*):([^:]*)$');
            IF m IS NOT NULL THEN
                IF m[2] !~ '^[0-9]*$' THEN
                    RETURN NULL;
                END IF;
                host := m[1];
            END IF;
            IF right(host, 1) = '.' THEN
                host := left(host, -1);
            END IF;
            IF host <> 'linkedin.com' AND right(host, 13) <> '.linkedin.com' THEN
                RETURN NULL;
            END IF;

            path := regexp_replace(path, '/+$', '');
            IF path = '' THEN
                RETURN NULL;
            END IF;
            segments := string_to_array(path, '/');  -- {'', kind, ...}
            IF coalesce(array_length(segments, 1), 0) < 3 THEN
                RETURN NULL;
            END IF;
            kind := lower(segments[2]);
            IF kind = 'in' THEN
                IF segments[3] = '' OR lower(left(segments[3], 9)) = 'imported-' THEN
                    RETURN NULL;
                END IF;
                RETURN 'https://www.linkedin.com/in/' || lower(segments[3]);
            ELSIF kind IN ('pub', 'sales') THEN
                tail := segments[3:];
                IF '' = ANY (tail) OR lower(left(tail[1], 9)) = 'imported-' THEN
                    RETURN NULL;
                END IF;
                RETURN 'https://www.linkedin.com/' || kind || '/' || array_to_string(tail, '/');
            END IF;
            RETURN NULL;
        END
        $fn$;

        -- Fills campaign_leads.identity_key from the campaign's channel, whoever writes the row and
        -- whatever they put in identity_key.
        CREATE FUNCTION leadimport_campaign_leads_identity() RETURNS trigger
        LANGUAGE plpgsql
        AS $fn$
        DECLARE
            campaign_channel text;
        BEGIN
            SELECT c.channel INTO campaign_channel FROM campaigns c WHERE c.id = NEW.campaign_id;
            IF campaign_channel = 'email' THEN
                NEW.identity_key := leadimport_normalize_email(NEW.email);
            ELSIF campaign_channel = 'linkedin' THEN
                NEW.identity_key := leadimport_normalize_linkedin(NEW.linkedin_url);
            ELSE
                NEW.identity_key := NULL;
            END IF;
            RETURN NEW;
        END
        $fn$;

        CREATE TRIGGER campaign_leads_identity
            BEFORE INSERT OR UPDATE OF campaign_id, email, linkedin_url, identity_key ON campaign_leads
            FOR EACH ROW EXECUTE FUNCTION leadimport_campaign_leads_identity();

        -- A campaign whose channel changes gets its leads' identities recomputed (and the unique
        -- index then refuses the change if two leads share the new identity).
        CREATE FUNCTION leadimport_campaigns_channel_changed() RETURNS trigger
        LANGUAGE plpgsql
        AS $fn$
        BEGIN
            UPDATE campaign_leads SET identity_key = NULL WHERE campaign_id = NEW.id;
            RETURN NULL;
        END
        $fn$;

        CREATE TRIGGER campaigns_channel_changed
            AFTER UPDATE OF channel ON campaigns
            FOR EACH ROW WHEN (OLD.channel IS DISTINCT FROM NEW.channel)
            EXECUTE FUNCTION leadimport_campaigns_channel_changed();

        -- updated_at follows every update, unless the writer set it itself.
        CREATE FUNCTION leadimport_touch_updated_at() RETURNS trigger
        LANGUAGE plpgsql
        AS $fn$
        BEGIN
            IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
                NEW.updated_at := now();
            END IF;
            RETURN NEW;
        END
        $fn$;

        CREATE TRIGGER leads_touch_updated_at BEFORE UPDATE ON leads
            FOR EACH ROW EXECUTE FUNCTION leadimport_touch_updated_at();
        CREATE TRIGGER campaigns_touch_updated_at BEFORE UPDATE ON campaigns
            FOR EACH ROW EXECUTE FUNCTION leadimport_touch_updated_at();
        CREATE TRIGGER campaign_leads_touch_updated_at BEFORE UPDATE ON campaign_leads
            FOR EACH ROW EXECUTE FUNCTION leadimport_touch_updated_at();
        """#)

    /// Version 2: the identity trigger made cheaper (it ran a lookup and a SQL function that was
    /// parsed again in every statement, about a fifth of PostgreSQL's time on a ten-row insert), and
    /// LinkedIn URLs with `://` in their query no longer taken for an unknown scheme. Existing
    /// `identity_key`s are left as they are: a row the old rule gave no identity keeps none until
    /// it is next updated, since recomputing them here could make two rows of a campaign collide
    /// and fail the migration.
    static let version2 = Migration(version: 2, name: "cheaper identity trigger, LinkedIn scheme rule", sql: #"""
        -- Not STRICT: the body already gives NULL for NULL, and a STRICT SQL function whose body is
        -- not strict throughout (nullif) is never inlined, so every statement parsed and planned
        -- it afresh.
        CREATE OR REPLACE FUNCTION leadimport_normalize_email(raw text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $fn$
            SELECT nullif(lower(regexp_replace(raw, '^[[:space:]]+|[[:space:]]+$', '', 'g')), '')
        $fn$;

        CREATE OR REPLACE FUNCTION leadimport_normalize_linkedin(raw text) RETURNS text
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
        AS $fn$
        DECLARE
            v text;
            m text[];
            authority text;
            host text;
            path text;
            slash int;
            segments text[];
            kind text;
            tail text[];
        BEGIN
            v := regexp_replace(raw, '^[[:space:]]+|[[:space:]]+$', '', 'g');
            IF v = '' OR lower(left(v, 9)) = 'imported-' THEN
                RETURN NULL;
            END IF;
            IF v ~ '[[:space:][:cntrl:]\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF]' THEN
                RETURN NULL;
            END IF;

            -- A scheme is letters, digits, + . - after a letter (RFC 3986): what comes before a
            -- :// that has a / or ? in it belongs to the path or the query, not to a scheme.
            m := regexp_match(v, '^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$');
            IF m IS NOT NULL THEN
                IF lower(m[1]) NOT IN ('http', 'https') THEN
                    RETURN NULL;
                END IF;
                v := m[2];
            ELSIF left(v, 2) = '//' THEN
                v := substr(v, 3);
            END IF;
            -- Query and fragment go first: a / inside them belongs to neither host nor path.
            v := (regexp_match(v, '^[^?#]*'))[1];

            slash := strpos(v, '/');
            IF slash > 0 THEN
                authority := left(v, slash - 1);
                path := substr(v, slash);
            ELSE
                authority := v;
                path := '';
            END IF;
            IF strpos(authority, '@') > 0 THEN
                RETURN NULL;
            END IF;
            host := lower(authority);
            m := regexp_match(host, '^(.*):([^:]*)$');
            IF m IS NOT NULL THEN
                IF m[2] !~ '^[0-9]*$' THEN
                    RETURN NULL;
                END IF;
                host := m[1];
            END IF;
            IF right(host, 1) = '.' THEN
                host := left(host, -1);
            END IF;
            IF host <> 'linkedin.com' AND right(host, 13) <> '.linkedin.com' THEN
                RETURN NULL;
            END IF;

            path := regexp_replace(path, '/+$', '');
            IF path = '' THEN
                RETURN NULL;
            END IF;
            segments := string_to_array(path, '/');  -- {'', kind, ...}
            IF coalesce(array_length(segments, 1), 0) < 3 THEN
                RETURN NULL;
            END IF;
            kind := lower(segments[2]);
            IF kind = 'in' THEN
                IF segments[3] = '' OR lower(left(segments[3], 9)) = 'imported-' THEN
                    RETURN NULL;
                END IF;
                RETURN 'https://www.linkedin.com/in/' || lower(segments[3]);
            ELSIF kind IN ('pub', 'sales') THEN
                tail := segments[3:];
                IF '' = ANY (tail) OR lower(left(tail[1], 9)) = 'imported-' THEN
                    RETURN NULL;
                END IF;
                RETURN 'https://www.linkedin.com/' || kind || '/' || array_to_string(tail, '/');
            END IF;
            RETURN NULL;
        END
        $fn$;

        -- One query per row instead of a lookup and then an expression: the campaign's channel
        -- picks the identity, and no campaign (the foreign key refuses the row anyway) gives NULL.
        CREATE OR REPLACE FUNCTION leadimport_campaign_leads_identity() RETURNS trigger
        LANGUAGE plpgsql
        AS $fn$
        BEGIN
            SELECT CASE c.channel
                       WHEN 'email' THEN leadimport_normalize_email(NEW.email)
                       WHEN 'linkedin' THEN leadimport_normalize_linkedin(NEW.linkedin_url)
                   END
            INTO NEW.identity_key
            FROM campaigns c WHERE c.id = NEW.campaign_id;
            RETURN NEW;
        END
        $fn$;
        """#)

    /// Version 3: a batch commits only into a campaign that is still a draft at that moment. The
    /// import's insert calls this once per batch, in the batch's transaction: the share lock keeps
    /// the campaign's status (and the campaign) as it is until the batch has committed.
    static let version3 = Migration(version: 3, name: "batches only into draft campaigns", sql: #"""
        CREATE FUNCTION leadimport_campaign_accepts_leads(campaign uuid) RETURNS boolean
        LANGUAGE plpgsql VOLATILE
        AS $fn$
        DECLARE
            current_status text;
        BEGIN
            SELECT c.status INTO current_status FROM campaigns c WHERE c.id = campaign FOR SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'campaign % no longer exists', campaign USING ERRCODE = 'LI002';
            END IF;
            IF current_status IS DISTINCT FROM 'draft' THEN
                RAISE EXCEPTION 'campaign % is no longer a draft (%)', campaign, current_status USING ERRCODE = 'LI001';
            END IF;
            RETURN true;
        END
        $fn$;
        """#)
}
