SELECT value FROM credentials WHERE name = $1
