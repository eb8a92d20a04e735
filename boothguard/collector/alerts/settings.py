from boothguard.section import Section


class AlertsSection(Section):
    pass
