-- warehouse.sql - a small consolidated warehouse for the source-postgres
-- examples: products and stock for Shops, customers and orders for CRM360.
-- psql -d warehouse -f examples/postgres/warehouse.sql
CREATE SCHEMA IF NOT EXISTS warehouse;

CREATE TABLE warehouse.product (
    product_code text PRIMARY KEY,
    brand_name text NOT NULL,
    product_name text NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    currency char(3) NOT NULL DEFAULT 'BRL',
    is_active boolean NOT NULL DEFAULT true,
    modified_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE warehouse.stock (
    product_code text REFERENCES warehouse.product,
    store_code text,
    on_hand integer NOT NULL,
    modified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_code, store_code)
);

CREATE TABLE warehouse.customer (
    customer_id text PRIMARY KEY,
    brand text NOT NULL,
    email text NOT NULL,
    full_name text,
    modified_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE warehouse.sales_order (
    order_id text PRIMARY KEY,
    brand text NOT NULL,
    customer_id text NOT NULL REFERENCES warehouse.customer,
    status text NOT NULL,
    currency char(3) NOT NULL DEFAULT 'BRL',
    total numeric(12, 2) NOT NULL,
    lines jsonb NOT NULL,
    ordered_at timestamptz NOT NULL,
    modified_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO warehouse.product (product_code, brand_name, product_name, unit_price, modified_at)
SELECT 'SKU-' || g, 'aurora', 'Product ' || g, (g * 7.5)::numeric(12, 2),
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, 40) g;

INSERT INTO warehouse.stock (product_code, store_code, on_hand, modified_at)
SELECT 'SKU-' || g, s, g * 3, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, 40) g, unnest(ARRAY['sp-01', 'rj-02']) s;

INSERT INTO warehouse.customer (customer_id, brand, email, full_name, modified_at)
SELECT 'C' || g, 'aurora', 'customer' || g || '@example.com', 'Customer ' || g,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, 30) g;

INSERT INTO warehouse.sales_order (order_id, brand, customer_id, status, total, lines, ordered_at,
                                   modified_at)
SELECT 'O' || g, 'aurora', 'C' || (g % 30 + 1), 'paid', (g * 10 + 0.9)::numeric(12, 2),
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (g % 40 + 1), 'quantity', 1,
                                            'unit_price', (g * 10 + 0.9)::numeric(12, 2)::text)),
       timestamptz '2026-01-02 00:00:00+00' + g * interval '1 minute',
       timestamptz '2026-01-02 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, 60) g;
