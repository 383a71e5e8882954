with

source as (

    select * from {{ source('shop', 'payments') }}

),

renamed as (

    select

        ----------  ids
        id as payment_id,
        order_id,

        ---------- text
        payment_method,

        ---------- numerics
        cast(amount_cents as decimal(18, 2)) / 100 as amount,

        ---------- timestamps
        paid_at

    from source

)

select * from renamed
