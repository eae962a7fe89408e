-- Finds the newest pending registration request and the newest unprocessed login event: what the instant-account sensor compares with its cursor.
SELECT (SELECT max(request_id) FROM web.registration_request WHERE status = 'pending') AS newest_request,
       (SELECT max(event_id) FROM web.login_event WHERE processed_at IS NULL) AS newest_login;
