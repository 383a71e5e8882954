{#-
    `dbt source freshness` measured against the run's interval end, not the wall clock.

    dbt compares a source's newest `loaded_at_field` with `current_timestamp()`, so a backfill of
    last year would find every source stale and stop every model. Mallard passes the run's
    interval in MALLARD_INTERVAL_END (see interval_filter.sql); a source is fresh when its newest
    row is recent *for that interval*. Without the env var (dbt run by hand, an asset-triggered
    run with no interval) the reference is now, as in plain dbt. A table without rows gives dbt's
    own "null value for loaded_at_field" runtime error, which stops the models that read it.
-#}
{% macro mallard_freshness_reference() -%}
    {%- set interval_end = env_var('MALLARD_INTERVAL_END', '') -%}
    {%- if interval_end -%}
        cast('{{ interval_end }}' as timestamp with time zone)
    {%- else -%}
        {{ current_timestamp() }}
    {%- endif -%}
{%- endmacro %}

{#- Overrides dbt's global default (a root-project macro wins the dispatch); only the reference differs. -#}
{% macro default__collect_freshness(source, loaded_at_field, filter) %}
    {% call statement('collect_freshness', fetch_result=True, auto_begin=False) -%}
        select
            max({{ loaded_at_field }}) as max_loaded_at,
            {{ mallard_freshness_reference() }} as snapshotted_at
        from {{ source }}
        {% if filter %}
        where {{ filter }}
        {% endif %}
    {%- endcall %}
    {{ return(load_result('collect_freshness')) }}
{% endmacro %}
