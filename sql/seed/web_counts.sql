SELECT (SELECT count(*) FROM web.app_user), (SELECT count(*) FROM web.customer),
(SELECT count(*) FROM web.user_customer), (SELECT count(*) FROM web.favourite),
(SELECT count(*) FROM web.registration_request);
