"""What the UI suites' server holds: one tenant, one collection, one short document."""

TENANT = "ui-tests"
COLLECTION = "moons"
DOCUMENT = (
    "The moon Zarnak orbits the gas giant Pelion. Its orbital period is 41 days. Zarnak was "
    "discovered in 1987 by the astronomer Ilse Marwitz at the Calar Alto observatory."
)
