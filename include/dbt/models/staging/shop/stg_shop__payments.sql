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
        {{ cents_to_dollars('amount_cents') }} as amount,

        ---------- timestamps
        paid_at

    from source

)

select * from renamed
