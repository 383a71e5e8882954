{#- Integer cents to an exact two-decimal amount (dividing a decimal by an integer gives a double in DuckDB). -#}
{% macro cents_to_dollars(column_name) -%}
    cast(({{ column_name }} / 100) as decimal(18, 2))
{%- endmacro %}
