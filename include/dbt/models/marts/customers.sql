with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('orders') }}

),

customer_orders as (

    select
        customer_id,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        count(*) as number_of_orders,
        sum(order_total) as lifetime_value

    from orders

    group by customer_id

),

joined as (

    select
        customers.customer_id,
        customers.customer_name,
        customers.email,
        customers.signed_up_at,
        customer_orders.first_ordered_at,
        customer_orders.last_ordered_at,
        coalesce(customer_orders.number_of_orders, 0) as number_of_orders,
        coalesce(customer_orders.lifetime_value, 0) as lifetime_value

    from customers

    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

)

select * from joined
