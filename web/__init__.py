"""The caseworkers' and auditors' web app: review every flag, see why, and leave a verifiable trail."""
