{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}
    {{ interval_filter('ordered_at') }}

),

order_payments as (

    select * from {{ ref('int_order_payments_pivoted') }}

),

stores as (

    select * from {{ ref('stg_stores__stores') }}

),

joined as (

    select
        orders.order_id,
        orders.customer_id,
        orders.store_id,
        stores.store_name,
        orders.order_status,
        orders.ordered_at,
        orders.order_date,
        coalesce(order_payments.credit_card_amount, 0) as credit_card_amount,
        coalesce(order_payments.bank_transfer_amount, 0) as bank_transfer_amount,
        coalesce(order_payments.gift_card_amount, 0) as gift_card_amount,
        coalesce(order_payments.coupon_amount, 0) as coupon_amount,
        coalesce(order_payments.payment_count, 0) as payment_count,
        coalesce(order_payments.total_amount, 0) as order_total

    from orders

    left join order_payments
        on orders.order_id = order_payments.order_id

    left join stores
        on orders.store_id = stores.store_id

)

select * from joined
