with

source as (

    select * from {{ source('marketing', 'spend') }}

),

renamed as (

    select

        ---------- text
        channel,

        ---------- numerics
        cast(spend as decimal(18, 2)) as spend,

        ---------- dates
        cast(spend_date as date) as spend_date

    from source

)

select * from renamed
