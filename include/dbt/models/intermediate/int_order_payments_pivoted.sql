{%- set payment_methods = ['credit_card', 'bank_transfer', 'gift_card', 'coupon'] -%}

with

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

pivoted as (

    select
        order_id,
        {% for payment_method in payment_methods -%}
            sum(case when payment_method = '{{ payment_method }}' then amount else 0 end)
                as {{ payment_method }}_amount,
        {% endfor -%}
        count(*) as payment_count,
        sum(amount) as total_amount

    from payments

    group by order_id

)

select * from pivoted
