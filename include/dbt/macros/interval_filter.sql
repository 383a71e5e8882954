{#-
    The slice of an incremental model that a DAG run rebuilds. Mallard passes the run's interval in
    the env vars MALLARD_INTERVAL_START / MALLARD_INTERVAL_END (ISO timestamps, UTC). Without them
    (a first build, `--full-refresh`, or dbt run by hand) nothing is filtered.

    Why env vars and not `--vars`: dbt throws its partial parse away whenever `--vars` change
    ("Unable to do partial parsing because config vars ... have changed"), so a new interval every
    run cost a full re-parse. `env_var()` is only read inside `is_incremental()`, which is false
    while dbt parses, so the saved parse records no env var and survives a new interval.
-#}
{% macro _mallard_interval_bound(which) -%}
    {{- return(env_var('MALLARD_INTERVAL_' ~ (which | upper), '')) -}}
{%- endmacro %}

{% macro interval_filter(timestamp_column) -%}
    {%- if is_incremental() and _mallard_interval_bound('start') -%}
        where {{ timestamp_column }} >= cast('{{ _mallard_interval_bound("start") }}' as timestamptz)
            and {{ timestamp_column }} < cast('{{ _mallard_interval_bound("end") }}' as timestamptz)
    {%- endif -%}
{%- endmacro %}

{#- The same for a date column: every day the interval touches is rebuilt whole. -#}
{% macro interval_days_filter(date_column) -%}
    {%- if is_incremental() and _mallard_interval_bound('start') -%}
        where {{ date_column }} >= cast(cast('{{ _mallard_interval_bound("start") }}' as timestamptz) as date)
            and {{ date_column }}
            <= cast(cast('{{ _mallard_interval_bound("end") }}' as timestamptz) - interval '1 microsecond' as date)
    {%- endif -%}
{%- endmacro %}
