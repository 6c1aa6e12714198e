"""The GIS review web app: map, evidence, decisions with an audit trail, dashboard, public status map."""
