-- Identities were given explicitly (so that links and favourites can name them); the website's next
-- user must get the number after them.
SELECT setval(pg_get_serial_sequence('web.app_user', 'user_id'), coalesce(max(user_id), 1), max(user_id) IS NOT NULL)
FROM web.app_user;
