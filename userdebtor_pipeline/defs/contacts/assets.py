"""M1-M3 as the UI shows them: plan, blocking check, load.

contact_links_plan -> contact_links_plan_is_sound (blocking) -> contact_links_applied
customer_mirror_plan -> customer_mirror -> contact_links_applied (links need their accounts on the web)
"""

from userdebtor_pipeline.defs.contacts.checks import contact_links_plan_is_sound
from userdebtor_pipeline.defs.contacts.customer_mirror import customer_mirror, customer_mirror_plan
from userdebtor_pipeline.defs.contacts.load import contact_links_applied
from userdebtor_pipeline.defs.contacts.plan import contact_links_plan

assets = [contact_links_plan, customer_mirror_plan, customer_mirror, contact_links_applied]
asset_checks = [contact_links_plan_is_sound]
