with

source as (

    select * from {{ source('stores', 'stores') }}

),

renamed as (

    select

        ----------  ids
        cast(store_id as bigint) as store_id,

        ---------- text
        store_name,
        city,

        ---------- numerics
        cast(tax_rate as decimal(5, 4)) as tax_rate,

        ---------- dates
        cast(opened_on as date) as opened_on

    from source

)

select * from renamed
