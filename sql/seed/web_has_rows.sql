SELECT EXISTS (SELECT 1 FROM web.app_user), EXISTS (SELECT 1 FROM web.customer),
EXISTS (SELECT 1 FROM web.user_customer), EXISTS (SELECT 1 FROM web.favourite);
