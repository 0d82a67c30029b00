"""The Salesforce fields sfstripe writes on Account: one place, shared by the handlers, the
SFDX metadata test and the README. Stripe owns every one of them (Salesforce edits are ignored)."""

from __future__ import annotations

CUSTOMER_ID = "Stripe_Customer_Id__c"
BILLING_STATUS = "Stripe_Billing_Status__c"
INVOICE_NUMBER = "Stripe_Last_Invoice_Number__c"
INVOICE_STATUS = "Stripe_Last_Invoice_Status__c"
INVOICE_AMOUNT_DUE = "Stripe_Last_Invoice_Amount_Due__c"
INVOICE_CURRENCY = "Stripe_Last_Invoice_Currency__c"
INVOICE_URL = "Stripe_Last_Invoice_Url__c"
INVOICE_PDF_URL = "Stripe_Last_Invoice_Pdf_Url__c"
DUNNING_ATTEMPTS = "Stripe_Dunning_Attempts__c"
NEXT_PAYMENT_ATTEMPT = "Stripe_Next_Payment_Attempt__c"
PAYMENT_METHOD_BRAND = "Stripe_Payment_Method_Brand__c"
PAYMENT_METHOD_LAST4 = "Stripe_Payment_Method_Last4__c"
PAYMENT_METHOD_EXPIRY = "Stripe_Payment_Method_Expiry__c"

WRITTEN = (
    CUSTOMER_ID,
    BILLING_STATUS,
    INVOICE_NUMBER,
    INVOICE_STATUS,
    INVOICE_AMOUNT_DUE,
    INVOICE_CURRENCY,
    INVOICE_URL,
    INVOICE_PDF_URL,
    DUNNING_ATTEMPTS,
    NEXT_PAYMENT_ATTEMPT,
    PAYMENT_METHOD_BRAND,
    PAYMENT_METHOD_LAST4,
    PAYMENT_METHOD_EXPIRY,
)

BILLING_STATUSES = ("current", "past_due", "unpaid", "canceled")
INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")

# Read by the default mapping: the billing contact lookup and the tax-exempt flag.
BILLING_CONTACT = "Billing_Contact__c"
TAX_EXEMPT = "Tax_Exempt__c"
READ = (BILLING_CONTACT, TAX_EXEMPT)
