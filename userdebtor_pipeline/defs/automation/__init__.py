"""Operating the integration: schedules, sensors and run-failure warnings."""
