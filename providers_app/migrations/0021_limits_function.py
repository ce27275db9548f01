"""Per-key limits taken on PostgreSQL in one round trip (providers_app/limits/database_backend.py).

Why a function: taking a request's limits from Python was a transaction of
several statements (begin, lock, one per limit, commit), each a round trip to
the server; this is the same work, the same advisory lock and the same rows, in
one `SELECT`. It checks every limit before taking any (the lock keeps the counts
still meanwhile), so nothing needs rolling back. SQLite keeps the Python path.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION fallback_limits_acquire(
    p_token text, p_now float8, p_lease_s float8, p_amount bigint,
    p_scopes text[], p_kinds text[], p_slots boolean[], p_maxima bigint[], p_windows bigint[]
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    lock_scope text;
BEGIN
    -- Short-lived bookkeeping: commit without waiting for the disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR lock_scope IN SELECT DISTINCT s FROM unnest(p_scopes) AS s ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('fallback-limit:' || lock_scope, 0));
    END LOOP;
    FOR i IN 1 .. cardinality(p_scopes) LOOP
        IF p_slots[i] THEN
            IF (SELECT count(*) FROM providers_app_limitlease
                WHERE scope = p_scopes[i] AND kind = p_kinds[i] AND expires_at > p_now)
               >= p_maxima[i] THEN
                -- Slots of processes that died: uncounted already, removed here (rare).
                DELETE FROM providers_app_limitlease
                WHERE scope = p_scopes[i] AND kind = p_kinds[i] AND expires_at <= p_now;
                RETURN i;
            END IF;
        ELSIF p_amount > p_maxima[i] OR EXISTS (
            SELECT 1 FROM providers_app_limitcounter
            WHERE scope = p_scopes[i] AND kind = p_kinds[i]
              AND window_start >= p_windows[i] AND used + p_amount > p_maxima[i]) THEN
            RETURN i;
        END IF;
    END LOOP;
    FOR i IN 1 .. cardinality(p_scopes) LOOP
        IF p_slots[i] THEN
            INSERT INTO providers_app_limitlease (scope, kind, token, expires_at)
            VALUES (p_scopes[i], p_kinds[i], p_token, p_now + p_lease_s);
        ELSE
            -- A newer window starts again from this amount; the same (or a newer,
            -- written by a process whose clock runs ahead) one adds it.
            INSERT INTO providers_app_limitcounter AS c (scope, kind, window_start, used)
            VALUES (p_scopes[i], p_kinds[i], p_windows[i], p_amount)
            ON CONFLICT (scope, kind) DO UPDATE SET
                used = CASE WHEN c.window_start < excluded.window_start
                            THEN excluded.used ELSE c.used + excluded.used END,
                window_start = GREATEST(c.window_start, excluded.window_start);
        END IF;
    END LOOP;
    RETURN 0;
END $$
"""

DROP = (
    "DROP FUNCTION IF EXISTS fallback_limits_acquire("
    "text, float8, float8, bigint, text[], text[], boolean[], bigint[], bigint[])"
)


def create_function(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_function(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0020_usage"),
    ]

    operations = [migrations.RunPython(create_function, drop_function)]
