"""The two-way customer sync: Salesforce Accounts and billing contacts -> Stripe customers
(`to_stripe`), Stripe billing outcomes -> the Account (`to_salesforce`), by a versioned field
mapping (`mapping`) whose ownership rule keeps the two directions from ping-ponging."""
