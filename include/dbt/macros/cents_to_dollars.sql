{#-
    Integer cents to an exact two-decimal amount, the same on every warehouse. Dividing by 100 is
    not: PostgreSQL divides integers to an integer (3977 / 100 = 39) and DuckDB to a double.
    Multiplying decimals is exact on both.
-#}
{% macro cents_to_dollars(column_name) -%}
    cast(cast({{ column_name }} as decimal(18, 2)) * 0.01 as decimal(18, 2))
{%- endmacro %}
