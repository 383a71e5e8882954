with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select

        ----------  ids
        id as order_id,
        customer_id,
        store_id,

        ---------- text
        status as order_status,

        ---------- timestamps
        ordered_at,
        cast(ordered_at as date) as order_date

    from source

)

select * from renamed
