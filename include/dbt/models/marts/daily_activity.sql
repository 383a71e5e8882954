{{
    config(
        materialized='incremental',
        unique_key='activity_date',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}

with

orders as (

    select * from {{ ref('orders') }}
    {{ interval_days_filter('order_date') }}

),

spend as (

    select * from {{ ref('stg_marketing__spend') }}

),

daily_orders as (

    select
        order_date as activity_date,
        count(*) as order_count,
        count(distinct customer_id) as ordering_customers,
        sum(order_total) as revenue

    from orders

    group by order_date

),

daily_spend as (

    select
        spend_date,
        sum(spend) as marketing_spend

    from spend

    group by spend_date

),

joined as (

    select
        daily_orders.activity_date,
        daily_orders.order_count,
        daily_orders.ordering_customers,
        daily_orders.revenue,
        coalesce(daily_spend.marketing_spend, 0) as marketing_spend

    from daily_orders

    left join daily_spend
        on daily_orders.activity_date = daily_spend.spend_date

)

select * from joined
