-- The Stripe customers (aliases `stripe:cus_...`) linked to an account's stream.
SELECT substr(alias, 8) AS stripe_customer
FROM identity_links
WHERE customer = $1 AND alias LIKE 'stripe:%'
ORDER BY linked_at, alias
