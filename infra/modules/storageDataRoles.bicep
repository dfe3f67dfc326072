// Data-plane role assignments for one principal on the data storage account, each scoped to one blob
// container or one queue (never the whole account): the least-privilege grid of docs/deploy.md,
// "Who may touch what". Used for the Functions app, the training job and the optional operator.

@description('Name of the data storage account (it holds the containers and queues named below).')
param storageAccountName string

@description('Object id of the principal that gets the roles.')
param principalId string

@description('A value known when the deployment starts that stands for the principal (its resource id, or the object id itself when that is a parameter): the assignments\' names derive from it, so What-If can predict them.')
param principalKey string

@description('Principal type of principalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'ServicePrincipal'

@description('Who this is, for the assignments\' descriptions (e.g. "Functions app").')
param principalLabel string

@description('One entry per container: the container and the built-in role definition id it gets there (Storage Blob Data Reader or Contributor).')
param containerRoles { container: string, roleId: string, why: string }[]

@description('Also Storage Blob Delegator on the account: it grants no data access, only the user delegation key that signs a user delegation SAS (an account-level operation), and such a SAS carries no more than the principal\'s container roles above. For people who hand a tool a SAS (scripts/export-customvision.sh).')
param delegator bool = false

@description('One entry per queue: the queue and the built-in role definition id it gets there (Storage Queue Data Reader, Message Processor or Message Sender).')
param queueRoles { queue: string, roleId: string, why: string }[] = []

// Built-in role definition id: Storage Blob Delegator.
var storageBlobDelegatorRoleId = 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'

resource account 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' existing = {
  parent: account
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-01-01' existing = {
  parent: account
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' existing = [
  for grant in containerRoles: {
    parent: blobService
    name: grant.container
  }
]

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' existing = [
  for grant in queueRoles: {
    parent: queueService
    name: grant.queue
  }
]

resource containerAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (grant, i) in containerRoles: {
    name: guid(containers[i].id, principalKey, grant.roleId)
    scope: containers[i]
    properties: {
      principalId: principalId
      principalType: principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
      description: '${principalLabel}: ${grant.why}'
    }
  }
]

resource queueAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (grant, i) in queueRoles: {
    name: guid(queues[i].id, principalKey, grant.roleId)
    scope: queues[i]
    properties: {
      principalId: principalId
      principalType: principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
      description: '${principalLabel}: ${grant.why}'
    }
  }
]

resource delegatorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (delegator) {
  name: guid(account.id, principalKey, storageBlobDelegatorRoleId)
  scope: account
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDelegatorRoleId)
    description: '${principalLabel}: sign user delegation SAS (no data access by itself).'
  }
}
