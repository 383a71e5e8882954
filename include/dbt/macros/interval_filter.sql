{#-
    The slice of an incremental model that a DAG run rebuilds. Mallard passes the run's interval as
    the vars `mallard_interval_start` / `mallard_interval_end` (ISO timestamps, UTC). Without them
    (a first build, `--full-refresh`, or dbt run by hand) nothing is filtered.
-#}
{% macro interval_filter(timestamp_column) -%}
    {%- if is_incremental() and var('mallard_interval_start', none) is not none -%}
        where {{ timestamp_column }} >= cast('{{ var("mallard_interval_start") }}' as timestamptz)
            and {{ timestamp_column }} < cast('{{ var("mallard_interval_end") }}' as timestamptz)
    {%- endif -%}
{%- endmacro %}

{#- The same for a date column: every day the interval touches is rebuilt whole. -#}
{% macro interval_days_filter(date_column) -%}
    {%- if is_incremental() and var('mallard_interval_start', none) is not none -%}
        where {{ date_column }} >= cast(cast('{{ var("mallard_interval_start") }}' as timestamptz) as date)
            and {{ date_column }}
            <= cast(cast('{{ var("mallard_interval_end") }}' as timestamptz) - interval 1 microsecond as date)
    {%- endif -%}
{%- endmacro %}
